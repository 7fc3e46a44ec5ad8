"""Orders remember their planned notional (for the daily-volume risk limit).

* `orders.notional`: quantity x reference price at planning time, in quote currency (USD for
  inverse contracts), written with the write-ahead intent. A market order has no price, so this
  is the only place its size in money is known before its fills are tracked.
  `OrderRepository.daily_volume` sums it over today's opening orders. Rows from before this
  revision have NULL and count `qty x (price or average fill price)`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE orders ADD COLUMN notional numeric CHECK (notional >= 0)")


def downgrade() -> None:
    op.execute("ALTER TABLE orders DROP COLUMN IF EXISTS notional")
