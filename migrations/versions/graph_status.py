"""jobs.graph_status and jobs.graph_attempts: a succeeded job's graph is drawn after its results are saved,
so the job row says where its graph stands — pending (being drawn), ready, failed (graph_error says why),
or NULL (none asked for, or the job did not succeed) — and how many runs started drawing it (a worker that
dies while drawing leaves it pending; the sweeper sends it again, up to MAX_ATTEMPTS).

Existing jobs: a succeeded job with a graph artifact is ready, one with a graph_error failed.

Revision ID: graph_status
Revises: workers
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "graph_status"
down_revision: Union[str, None] = "workers"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LEFT_PENDING = "the graph was still to be drawn when the database was downgraded"


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("graph_status", sa.String(16), nullable=True))
        batch_op.add_column(sa.Column("graph_attempts", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE jobs SET graph_status = 'ready' WHERE status = 'succeeded' AND EXISTS "
               "(SELECT 1 FROM artifacts WHERE artifacts.job_id = jobs.id AND artifacts.kind = 'graph_svg')")
    op.execute("UPDATE jobs SET graph_status = 'failed' WHERE status = 'succeeded' AND graph_status IS NULL "
               "AND graph_error IS NOT NULL")


def downgrade() -> None:
    # Before this revision a job's graph was drawn before it succeeded: one still pending has none, and says so.
    op.execute(sa.text("UPDATE jobs SET graph_error = :reason WHERE graph_status = 'pending'")
               .bindparams(reason=LEFT_PENDING))
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("graph_attempts")
        batch_op.drop_column("graph_status")
