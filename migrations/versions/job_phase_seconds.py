"""Jobs record how long each phase of their run took (queue wait, claim, data, compile, steps, final
metrics, graph, save), so the fixed cost of a job can be found and shown.

Revision ID: job_phase_seconds
Revises: sweeps
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "job_phase_seconds"
down_revision: Union[str, None] = "sweeps"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("phase_seconds", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("phase_seconds")
