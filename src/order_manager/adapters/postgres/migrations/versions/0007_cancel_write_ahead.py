"""A plan's cancels are written ahead too (docs/execution.md).

Until now a signal's `cancel` link was written only with the exchange's answer, so a process
that died after the write-ahead commit and before a cancel call left no trace of the cancel:
the resumed signal re-sent its intents and never cancelled the order its plan meant to cancel
(an opposite resting order). Now the link is committed with the intents, and
`cancel_done_at` is set when the exchange answered the cancel (done, or "not found": the order
was already gone). A resumed signal sends the cancels still without it.

NULL on other relations, and on cancel links from before this revision (all written with their
answer: treated as done).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE signal_order_links ADD COLUMN cancel_done_at timestamptz")
    # every cancel link so far was written with its answer
    op.execute(
        "UPDATE signal_order_links SET cancel_done_at = created_at WHERE relation = 'cancel'"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE signal_order_links DROP COLUMN IF EXISTS cancel_done_at")
