"""Outbox batch insert, set-based: one INSERT for a transaction's events instead of one call of
`om_outbox_add` (revision 0002) per event.

`om_outbox_add_many(p_events jsonb, p_lock_namespace integer)` keeps its signature and contract
(revision 0003: the events in array order; each aggregate's sequence continues gaplessly in that
order; `event_id`, `event_type`, `sequence`, `timestamp`, `trace_id` written into the stored
payload). What changes is how:

1. every aggregate of the batch is locked once (`pg_advisory_xact_lock`, the same keys as
   `om_outbox_add`), in sorted key order — so two transactions writing the same aggregates can
   no longer take their locks in opposite orders;
2. ONE `INSERT ... SELECT` numbers each aggregate's events `max(sequence) + row_number()` in
   array order and takes the rows' ids in array order (within an aggregate id order is still
   sequence order: the relay publishes in plain id order); the statement-level NOTIFY trigger
   fires once instead of once per event.

All the events of one batch carry the same `timestamp` (the batch's `clock_timestamp()`); they
were written by one transaction at one moment.

Per event the old loop paid a PL/pgSQL call, a separate `max()` lookup and a separate INSERT
(with its NOTIFY): about half of the cost of the answer statement that writes an order's
`created`/`filled` events.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SET_BASED = """
CREATE OR REPLACE FUNCTION om_outbox_add_many(p_events jsonb, p_lock_namespace integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
    v_count integer;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock_namespace, hashtext(k.key))
    FROM (SELECT DISTINCT (e->>3) || '/' || (e->>4) AS key
          FROM jsonb_array_elements(p_events) AS a(e)
          WHERE e->>4 IS NOT NULL
          ORDER BY 1) AS k;
    WITH ev AS (
        SELECT (e->>0)::uuid AS event_id, e->>1 AS topic, e->>2 AS event_type,
               e->>3 AS aggregate_type, e->>4 AS aggregate_id, e->5 AS payload,
               e->>6 AS trace_id, (e->>7)::boolean AS is_dry_run, n
        FROM jsonb_array_elements(p_events) WITH ORDINALITY AS a(e, n)
    ), numbered AS (
        SELECT ev.*,
               CASE WHEN ev.aggregate_id IS NOT NULL THEN
                   (SELECT COALESCE(max(o.sequence), 0) FROM outbox o
                    WHERE o.aggregate_type = ev.aggregate_type
                      AND o.aggregate_id = ev.aggregate_id
                      AND o.aggregate_id IS NOT NULL AND o.sequence IS NOT NULL)
                   + row_number() OVER (PARTITION BY ev.aggregate_type, ev.aggregate_id
                                        ORDER BY ev.n)
               END::integer AS sequence
        FROM ev
    )
    INSERT INTO outbox (event_id, topic, event_type, aggregate_type, aggregate_id,
                        sequence, payload, trace_id, is_dry_run, created_at)
    SELECT event_id, topic, event_type, aggregate_type, aggregate_id, sequence,
           payload || jsonb_build_object(
               'event_id', event_id::text,
               'event_type', event_type,
               'sequence', sequence,
               'timestamp',
               to_char(v_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
               'trace_id', trace_id),
           trace_id, is_dry_run, v_now
    FROM numbered
    ORDER BY n;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$
"""

#: revision 0003's body: one `om_outbox_add` call per event, in array order
LOOPED = """
CREATE OR REPLACE FUNCTION om_outbox_add_many(p_events jsonb, p_lock_namespace integer)
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
"""


def upgrade() -> None:
    op.execute(SET_BASED)


def downgrade() -> None:
    op.execute(LOOPED)
