"""Workers beat into a table of their own, so GET /workers and /metrics can list the live ones from
the service's own data (whatever the broker).

Revision ID: workers
Revises: loss_chunks
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "workers"
down_revision: Union[str, None] = "loss_chunks"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("current_job_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("workers")
