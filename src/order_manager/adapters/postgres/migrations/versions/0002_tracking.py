"""Tracking: exact position books, execution position index, wallet balances.

* `positions.entry_value` keeps the average-cost state exactly (`avg_entry_price` is derived and
  may be a repeating decimal); `last_exec_*` is the ordering key of the last fill applied
  (exec time, Bybit `seq`, execId) so a fill that arrives late triggers a replay instead of
  being applied out of order; `baseline_*` is the book as the exchange reported it when drift
  was corrected (fills up to `baseline_exec_*` are included in it); `drift_count` counts
  corrections.
* `executions.position_idx`: the book a fill belongs to (one-way 0, hedge 1/2), so a position
  can be replayed from the executions table alone.
* `wallet_balances`: the latest wallet figures per coin from the `wallet` stream (and REST
  refreshes), read by the risk checks.
* `om_outbox_add(...)`: one round trip for an outbox insert — takes the aggregate's
  transaction-scoped advisory lock, assigns the next per-aggregate sequence and writes
  `event_id`, `event_type`, `sequence`, `timestamp` and `trace_id` into the stored payload
  (used by `PgOutboxRepository.add_event`; see there for why the lock makes sequences gapless).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = (
    "ALTER TABLE positions ADD COLUMN entry_value numeric NOT NULL DEFAULT 0",
    "ALTER TABLE positions ADD COLUMN last_exec_time timestamptz",
    "ALTER TABLE positions ADD COLUMN last_exec_seq bigint",
    "ALTER TABLE positions ADD COLUMN baseline_size numeric NOT NULL DEFAULT 0",
    "ALTER TABLE positions ADD COLUMN baseline_entry_value numeric NOT NULL DEFAULT 0",
    "ALTER TABLE positions ADD COLUMN baseline_realized_pnl numeric NOT NULL DEFAULT 0",
    "ALTER TABLE positions ADD COLUMN baseline_fees numeric NOT NULL DEFAULT 0",
    "ALTER TABLE positions ADD COLUMN baseline_exec_time timestamptz",
    "ALTER TABLE positions ADD COLUMN baseline_exec_seq bigint",
    "ALTER TABLE positions ADD COLUMN baseline_exec_id text",
    "ALTER TABLE positions ADD COLUMN drift_count integer NOT NULL DEFAULT 0",
    "ALTER TABLE executions ADD COLUMN position_idx smallint NOT NULL DEFAULT 0"
    " CHECK (position_idx IN (0, 1, 2))",
    "CREATE INDEX executions_book_idx ON executions"
    " (category, symbol, position_idx, is_dry_run, exec_time, exchange_seq, exec_id)",
    """
    CREATE TABLE wallet_balances (
        account_type          text NOT NULL DEFAULT 'UNIFIED',
        coin                  text NOT NULL,
        is_dry_run            boolean NOT NULL DEFAULT false,
        wallet_balance        numeric NOT NULL DEFAULT 0,
        equity                numeric,
        available_to_withdraw numeric,
        total_position_im     numeric,
        total_order_im        numeric,
        locked                numeric,
        unrealised_pnl        numeric,
        exchange_time         timestamptz,
        source                text NOT NULL DEFAULT 'ws' CHECK (source IN ('ws', 'rest', 'paper')),
        updated_at            timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (account_type, coin, is_dry_run)
    )
    """,
    """
    CREATE FUNCTION om_outbox_add(
        p_event_id uuid, p_topic text, p_event_type text, p_aggregate_type text,
        p_aggregate_id text, p_payload jsonb, p_trace_id text, p_is_dry_run boolean,
        p_lock_namespace integer
    ) RETURNS integer LANGUAGE plpgsql AS $$
    DECLARE
        v_sequence integer;
        v_now timestamptz := clock_timestamp();
    BEGIN
        IF p_aggregate_id IS NOT NULL THEN
            PERFORM pg_advisory_xact_lock(
                p_lock_namespace, hashtext(p_aggregate_type || '/' || p_aggregate_id));
            SELECT COALESCE(max(sequence), 0) + 1 INTO v_sequence FROM outbox
            WHERE aggregate_type = p_aggregate_type AND aggregate_id = p_aggregate_id
              AND aggregate_id IS NOT NULL AND sequence IS NOT NULL;
        END IF;
        INSERT INTO outbox (event_id, topic, event_type, aggregate_type, aggregate_id,
                            sequence, payload, trace_id, is_dry_run, created_at)
        VALUES (p_event_id, p_topic, p_event_type, p_aggregate_type, p_aggregate_id,
                v_sequence,
                p_payload || jsonb_build_object(
                    'event_id', p_event_id::text,
                    'event_type', p_event_type,
                    'sequence', v_sequence,
                    'timestamp',
                    to_char(v_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                    'trace_id', p_trace_id),
                p_trace_id, p_is_dry_run, v_now);
        RETURN v_sequence;
    END;
    $$
    """,
)

DOWNGRADE = (
    "DROP FUNCTION IF EXISTS om_outbox_add(uuid, text, text, text, text, jsonb, text, boolean,"
    " integer)",
    "DROP TABLE IF EXISTS wallet_balances",
    "DROP INDEX IF EXISTS executions_book_idx",
    "ALTER TABLE executions DROP COLUMN IF EXISTS position_idx",
    *(
        f"ALTER TABLE positions DROP COLUMN IF EXISTS {column}"
        for column in (
            "entry_value",
            "last_exec_time",
            "last_exec_seq",
            "baseline_size",
            "baseline_entry_value",
            "baseline_realized_pnl",
            "baseline_fees",
            "baseline_exec_time",
            "baseline_exec_seq",
            "baseline_exec_id",
            "drift_count",
        )
    ),
)


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
