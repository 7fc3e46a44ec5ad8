"""Initial schema: signals, orders, signal-order links, executions, positions, snapshots,
outbox and audit log.

Conventions (see docs/schema.md for the reasons):

* every money or quantity value is unconstrained NUMERIC (exact, any scale);
* every timestamp is timestamptz (the server runs in UTC); Bybit's own millisecond clocks are
  kept verbatim as BIGINT (`exchange_updated_time` decides which order update is newer);
* every status column has a CHECK listing the legal values; the signal's own fields are not
  constrained, because a rejected signal is recorded exactly as it came;
* mutable rows carry `row_version` (optimistic concurrency) and `updated_at`, both maintained
  by the `om_touch_row` trigger on every UPDATE;
* inserting into `outbox` sends NOTIFY on channel `outbox` (once per statement) so a relay
  blocked in LISTEN wakes within milliseconds.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ORDER_STATUSES = (
    "submitting",
    "pending",
    "partially_filled",
    "filled",
    "cancelled",
    "rejected",
    "expired",
    "untriggered",
    "triggered",
    "deactivated",
    "failed",
)
ACTIVE_ORDER_STATUSES = ("submitting", "pending", "partially_filled", "untriggered", "triggered")
SIGNAL_STATUSES = ("received", "processing", "executed", "rejected", "failed")


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


UPGRADE = f"""
CREATE FUNCTION om_touch_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.row_version := OLD.row_version + 1;
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE FUNCTION om_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END;
$$;

-- ------------------------------------------------------------------ signals
CREATE TABLE signals (
    signal_id        uuid PRIMARY KEY,
    status           text NOT NULL DEFAULT 'received'
                     CONSTRAINT signals_status_check CHECK (status IN {_in(SIGNAL_STATUSES)}),
    symbol           text,
    signal_type      text,
    strategy_id      text,
    amount           numeric,
    amount_unit      text,
    confidence       numeric,
    signal_timestamp timestamptz,
    is_warmup        boolean NOT NULL DEFAULT false,
    is_dry_run       boolean NOT NULL DEFAULT false,
    raw              jsonb NOT NULL,
    reason_code      text,
    reason_message   text,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    trace_id         text,
    received_at      timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    row_version      integer NOT NULL DEFAULT 1
);
CREATE INDEX signals_symbol_received_idx ON signals (symbol, received_at DESC);
CREATE INDEX signals_open_idx ON signals (received_at)
    WHERE status IN ('received', 'processing');
CREATE INDEX signals_trace_idx ON signals (trace_id);
CREATE TRIGGER signals_touch BEFORE UPDATE ON signals
    FOR EACH ROW EXECUTE FUNCTION om_touch_row();

-- ------------------------------------------------------------------ orders
CREATE TABLE orders (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    order_link_id         text NOT NULL UNIQUE
                          CHECK (length(order_link_id) BETWEEN 1 AND 36),
    order_id              text UNIQUE,
    signal_id             uuid REFERENCES signals (signal_id),
    leg                   integer CHECK (leg >= 0),
    category              text NOT NULL DEFAULT 'linear'
                          CHECK (category IN ('linear', 'spot', 'inverse')),
    symbol                text NOT NULL,
    side                  text NOT NULL CHECK (side IN ('Buy', 'Sell')),
    order_type            text NOT NULL CHECK (order_type IN ('Market', 'Limit')),
    time_in_force         text CHECK (time_in_force IN ('GTC', 'IOC', 'FOK', 'PostOnly', 'RPI')),
    qty                   numeric NOT NULL CHECK (qty > 0),
    price                 numeric CHECK (price >= 0),
    trigger_price         numeric,
    take_profit           numeric,
    stop_loss             numeric,
    reduce_only           boolean NOT NULL DEFAULT false,
    close_on_trigger      boolean NOT NULL DEFAULT false,
    position_idx          smallint NOT NULL DEFAULT 0 CHECK (position_idx IN (0, 1, 2)),
    stop_order_type       text,
    status                text NOT NULL DEFAULT 'submitting'
                          CONSTRAINT orders_status_check CHECK (status IN {_in(ORDER_STATUSES)}),
    exchange_status       text,
    reject_reason         text,
    cancel_type           text,
    last_error_code       integer,
    last_error            text,
    cum_exec_qty          numeric NOT NULL DEFAULT 0 CHECK (cum_exec_qty >= 0),
    cum_exec_value        numeric NOT NULL DEFAULT 0 CHECK (cum_exec_value >= 0),
    cum_exec_fee          numeric NOT NULL DEFAULT 0,
    fee_currency          text,
    avg_price             numeric CHECK (avg_price >= 0),
    leaves_qty            numeric CHECK (leaves_qty >= 0),
    exchange_created_time bigint,
    exchange_updated_time bigint,
    last_event_sequence   integer NOT NULL DEFAULT 0 CHECK (last_event_sequence >= 0),
    is_dry_run            boolean NOT NULL DEFAULT false,
    is_external           boolean NOT NULL DEFAULT false,
    trace_id              text,
    submitted_at          timestamptz,
    first_fill_at         timestamptz,
    closed_at             timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    row_version           integer NOT NULL DEFAULT 1,
    CHECK (cum_exec_qty <= qty)
);
CREATE INDEX orders_created_idx ON orders (created_at DESC, id);
CREATE INDEX orders_symbol_created_idx ON orders (symbol, created_at DESC);
CREATE INDEX orders_status_created_idx ON orders (status, created_at DESC);
CREATE INDEX orders_side_created_idx ON orders (side, created_at DESC);
CREATE INDEX orders_signal_idx ON orders (signal_id);
CREATE INDEX orders_active_idx ON orders (symbol, category, created_at)
    WHERE status IN {_in(ACTIVE_ORDER_STATUSES)};
CREATE INDEX orders_trace_idx ON orders (trace_id);
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION om_touch_row();

-- ------------------------------------------------------------------ signal <-> order (N:M)
CREATE TABLE signal_order_links (
    id            bigserial PRIMARY KEY,
    signal_id     uuid NOT NULL REFERENCES signals (signal_id) ON DELETE CASCADE,
    order_uuid    uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    relation      text NOT NULL CHECK (length(relation) > 0),
    sequence      integer NOT NULL DEFAULT 0 CHECK (sequence >= 0),
    allocated_qty numeric CHECK (allocated_qty >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (signal_id, order_uuid, relation)
);
CREATE INDEX signal_order_links_order_idx ON signal_order_links (order_uuid);

-- ------------------------------------------------------------------ executions (fills)
CREATE TABLE executions (
    exec_id       text PRIMARY KEY,
    order_uuid    uuid REFERENCES orders (id) ON DELETE SET NULL,
    order_id      text,
    order_link_id text,
    category      text NOT NULL DEFAULT 'linear',
    symbol        text NOT NULL,
    side          text NOT NULL CHECK (side IN ('Buy', 'Sell')),
    exec_type     text NOT NULL DEFAULT 'Trade',
    exec_qty      numeric NOT NULL CHECK (exec_qty >= 0),
    exec_price    numeric NOT NULL CHECK (exec_price >= 0),
    exec_value    numeric NOT NULL CHECK (exec_value >= 0),
    exec_fee      numeric NOT NULL DEFAULT 0,
    fee_currency  text,
    fee_rate      numeric,
    is_maker      boolean,
    closed_size   numeric,
    exec_time     timestamptz NOT NULL,
    exchange_seq  bigint,
    is_dry_run    boolean NOT NULL DEFAULT false,
    trace_id      text,
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX executions_order_idx ON executions (order_uuid, exec_time);
CREATE INDEX executions_exchange_order_idx ON executions (order_id);
CREATE INDEX executions_symbol_time_idx ON executions (symbol, exec_time);

-- ------------------------------------------------------------------ positions
CREATE TABLE positions (
    category              text NOT NULL DEFAULT 'linear',
    symbol                text NOT NULL,
    position_idx          smallint NOT NULL DEFAULT 0 CHECK (position_idx IN (0, 1, 2)),
    is_dry_run            boolean NOT NULL DEFAULT false,
    side                  text NOT NULL DEFAULT 'None' CHECK (side IN ('Buy', 'Sell', 'None')),
    size                  numeric NOT NULL DEFAULT 0 CHECK (size >= 0),
    avg_entry_price       numeric NOT NULL DEFAULT 0 CHECK (avg_entry_price >= 0),
    realized_pnl          numeric NOT NULL DEFAULT 0,
    unrealized_pnl        numeric NOT NULL DEFAULT 0,
    fees_paid             numeric NOT NULL DEFAULT 0,
    mark_price            numeric,
    position_value        numeric,
    leverage              numeric,
    liq_price             numeric,
    take_profit           numeric,
    stop_loss             numeric,
    exchange_size         numeric,
    exchange_avg_price    numeric,
    exchange_updated_time bigint,
    last_exec_id          text,
    last_event_sequence   integer NOT NULL DEFAULT 0 CHECK (last_event_sequence >= 0),
    validated_at          timestamptz,
    drift_detected_at     timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    row_version           integer NOT NULL DEFAULT 1,
    PRIMARY KEY (category, symbol, position_idx, is_dry_run)
);
CREATE INDEX positions_symbol_idx ON positions (symbol);
CREATE TRIGGER positions_touch BEFORE UPDATE ON positions
    FOR EACH ROW EXECUTE FUNCTION om_touch_row();

CREATE TABLE position_snapshots (
    id              bigserial PRIMARY KEY,
    category        text NOT NULL,
    symbol          text NOT NULL,
    position_idx    smallint NOT NULL,
    is_dry_run      boolean NOT NULL DEFAULT false,
    side            text NOT NULL CHECK (side IN ('Buy', 'Sell', 'None')),
    size            numeric NOT NULL CHECK (size >= 0),
    avg_entry_price numeric NOT NULL,
    realized_pnl    numeric NOT NULL,
    unrealized_pnl  numeric NOT NULL,
    fees_paid       numeric NOT NULL DEFAULT 0,
    mark_price      numeric,
    source          text NOT NULL DEFAULT 'periodic'
                    CHECK (source IN ('periodic', 'event', 'validation', 'reconcile', 'manual')),
    snapshot_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX position_snapshots_symbol_time_idx
    ON position_snapshots (symbol, snapshot_at DESC);

-- ------------------------------------------------------------------ transactional outbox
CREATE TABLE outbox (
    id             bigserial PRIMARY KEY,
    event_id       uuid NOT NULL UNIQUE,
    topic          text NOT NULL,
    event_type     text NOT NULL,
    aggregate_type text NOT NULL DEFAULT 'order',
    aggregate_id   text,
    sequence       integer CHECK (sequence > 0),
    payload        jsonb NOT NULL,
    trace_id       text,
    is_dry_run     boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    published_at   timestamptz,
    attempts       integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error     text
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;
CREATE UNIQUE INDEX outbox_aggregate_sequence_idx
    ON outbox (aggregate_type, aggregate_id, sequence)
    WHERE aggregate_id IS NOT NULL AND sequence IS NOT NULL;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION om_outbox_notify();

-- ------------------------------------------------------------------ audit log
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    kind         text NOT NULL
                 CHECK (kind IN ('exchange_call', 'state_change', 'operator', 'system')),
    action       text NOT NULL,
    entity_type  text,
    entity_id    text,
    signal_id    uuid,
    order_uuid   uuid,
    trace_id     text,
    request      jsonb,
    response     jsonb,
    http_status  integer,
    ret_code     integer,
    duration_ms  double precision,
    error        text,
    is_dry_run   boolean NOT NULL DEFAULT false
);
CREATE INDEX audit_log_trace_idx ON audit_log (trace_id);
CREATE INDEX audit_log_entity_idx ON audit_log (entity_type, entity_id, occurred_at);
CREATE INDEX audit_log_time_idx ON audit_log (occurred_at);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS audit_log;
DROP TABLE IF EXISTS outbox;
DROP TABLE IF EXISTS position_snapshots;
DROP TABLE IF EXISTS positions;
DROP TABLE IF EXISTS executions;
DROP TABLE IF EXISTS signal_order_links;
DROP TABLE IF EXISTS orders;
DROP TABLE IF EXISTS signals;
DROP FUNCTION IF EXISTS om_outbox_notify();
DROP FUNCTION IF EXISTS om_touch_row();
"""


def statements(script: str) -> list[str]:
    """Split a script into single statements (the asyncpg driver prepares each statement, and
    a prepared statement holds one command). `;` inside `$$ ... $$` bodies does not split."""
    out: list[str] = []
    current: list[str] = []
    in_body = False
    for line in script.splitlines():
        if line.lstrip().startswith("--") and not in_body:
            continue
        current.append(line)
        if line.count("$$") % 2 == 1:
            in_body = not in_body
        if not in_body and line.rstrip().endswith(";"):
            out.append("\n".join(current).strip().removesuffix(";"))
            current = []
    tail = "\n".join(current).strip().removesuffix(";")
    if tail:
        out.append(tail)
    return out


def upgrade() -> None:
    for statement in statements(UPGRADE):
        op.execute(statement)


def downgrade() -> None:
    for statement in statements(DOWNGRADE):
        op.execute(statement)
