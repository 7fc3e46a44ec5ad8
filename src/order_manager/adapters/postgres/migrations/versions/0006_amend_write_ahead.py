"""Amend links carry their write-ahead record (docs/execution.md, `domain.amends`).

A many-to-one amend's `amend` link was committed before the call with only the quantity it adds,
and a resumed signal counted it as done: a crash between that commit and the recorded answer (or
an earlier run whose amend and lookup both failed) could lose the signal's quantity. The link now
also holds what a resumed signal needs to settle the amend from the exchange's word on the order:

* `amend_qty`, `amend_price`: the absolute target the amend sends;
* `amend_from_qty`, `amend_from_price`: the order as it was planned from;
* `amend_notional`: the notional the amend adds (the daily-volume limit counts it);
* `amended_at`: set by the transaction that records the exchange's acknowledgement (NULL: not
  known to have landed).

All NULL on other relations, and on amend links written before this revision (those keep the
old meaning: counted as done).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE signal_order_links
            ADD COLUMN amend_qty        numeric CHECK (amend_qty > 0),
            ADD COLUMN amend_price      numeric CHECK (amend_price > 0),
            ADD COLUMN amend_from_qty   numeric CHECK (amend_from_qty >= 0),
            ADD COLUMN amend_from_price numeric CHECK (amend_from_price > 0),
            ADD COLUMN amend_notional   numeric CHECK (amend_notional >= 0),
            ADD COLUMN amended_at       timestamptz
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE signal_order_links
            DROP COLUMN IF EXISTS amend_qty,
            DROP COLUMN IF EXISTS amend_price,
            DROP COLUMN IF EXISTS amend_from_qty,
            DROP COLUMN IF EXISTS amend_from_price,
            DROP COLUMN IF EXISTS amend_notional,
            DROP COLUMN IF EXISTS amended_at
        """
    )
