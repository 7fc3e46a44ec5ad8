"""Outbox batch insert: every event of one transaction in one round trip.

* `om_outbox_add_many(p_events jsonb, p_lock_namespace integer)`: `p_events` is a JSON array of
  `[event_id, topic, event_type, aggregate_type, aggregate_id, payload, trace_id, is_dry_run]`
  arrays; they are written in array order through `om_outbox_add` (revision 0002), so each
  aggregate's sequence follows the order in which the transaction produced its events — exactly
  as if they had been added one by one. Returns the number of rows written.

`PgOutboxRepository` queues a transaction's events and writes them with this function just
before the commit (and before any outbox read in the same transaction).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = (
    """
    CREATE FUNCTION om_outbox_add_many(p_events jsonb, p_lock_namespace integer)
    RETURNS integer LANGUAGE plpgsql AS $$
    DECLARE
        v_event jsonb;
        v_count integer := 0;
    BEGIN
        FOR v_event IN SELECT e FROM jsonb_array_elements(p_events) WITH ORDINALITY AS a(e, n)
                       ORDER BY n
        LOOP
            PERFORM om_outbox_add(
                (v_event->>0)::uuid, v_event->>1, v_event->>2, v_event->>3, v_event->>4,
                v_event->5, v_event->>6, (v_event->>7)::boolean, p_lock_namespace);
            v_count := v_count + 1;
        END LOOP;
        RETURN v_count;
    END;
    $$
    """,
)

DOWNGRADE = ("DROP FUNCTION IF EXISTS om_outbox_add_many(jsonb, integer)",)


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
