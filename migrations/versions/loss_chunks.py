"""Loss histories packed in chunks: one `loss_chunks` row per job and block of 1,000 steps, holding the
block's steps (int64) and loss, accuracy, lr (float64, NaN where absent) as little-endian arrays, in place
of one `loss_points` row per step. Every stored point is converted both ways, bit for bit.

The packing is written out here, not imported from services.store.history: a migration must keep
meaning what it meant when it was written.

Revision ID: loss_chunks
Revises: job_phase_seconds
"""
import math
from itertools import groupby
from typing import Sequence, Union

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "loss_chunks"
down_revision: Union[str, None] = "job_phase_seconds"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

CHUNK_STEPS = 1000
FLOAT, INT = np.dtype("<f8"), np.dtype("<i8")

points = sa.table("loss_points", sa.column("job_id", sa.Uuid()), sa.column("step", sa.Integer()),
                  sa.column("loss", sa.Double()), sa.column("accuracy", sa.Double()), sa.column("lr", sa.Double()))
chunks = sa.table("loss_chunks", sa.column("job_id", sa.Uuid()), sa.column("chunk", sa.Integer()),
                  sa.column("count", sa.Integer()), sa.column("steps", sa.LargeBinary()),
                  sa.column("loss", sa.LargeBinary()), sa.column("accuracy", sa.LargeBinary()),
                  sa.column("lr", sa.LargeBinary()))


def upgrade() -> None:
    op.create_table(
        "loss_chunks",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("steps", sa.LargeBinary(), nullable=False),
        sa.Column("loss", sa.LargeBinary(), nullable=False),
        sa.Column("accuracy", sa.LargeBinary(), nullable=False),
        sa.Column("lr", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "chunk"),
    )
    bind = op.get_bind()
    job_ids = bind.execute(sa.select(points.c.job_id).distinct()).scalars().all()
    for job_id in job_ids:  # one job's points in memory at a time
        rows = bind.execute(sa.select(points).where(points.c.job_id == job_id).order_by(points.c.step)).all()
        batch = []
        for chunk, group in groupby(rows, lambda r: r.step // CHUNK_STEPS):
            group = list(group)
            batch.append({"job_id": job_id, "chunk": chunk, "count": len(group),
                          "steps": np.array([r.step for r in group], INT).tobytes(),
                          "loss": np.array([r.loss for r in group], FLOAT).tobytes(),
                          "accuracy": np.array([_nan(r.accuracy) for r in group], FLOAT).tobytes(),
                          "lr": np.array([_nan(r.lr) for r in group], FLOAT).tobytes()})
        bind.execute(chunks.insert(), batch)
    op.drop_table("loss_points")


def downgrade() -> None:
    op.create_table(
        "loss_points",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("loss", sa.Double(), nullable=False),
        sa.Column("accuracy", sa.Double(), nullable=True),
        sa.Column("lr", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "step"),
    )
    bind = op.get_bind()
    for row in bind.execute(sa.select(chunks).order_by(chunks.c.job_id, chunks.c.chunk)).all():
        columns = zip(np.frombuffer(row.steps, INT).tolist(), np.frombuffer(row.loss, FLOAT).tolist(),
                      np.frombuffer(row.accuracy, FLOAT).tolist(), np.frombuffer(row.lr, FLOAT).tolist())
        bind.execute(points.insert(), [{"job_id": row.job_id, "step": step, "loss": loss,
                                        "accuracy": _none(accuracy), "lr": _none(lr)}
                                       for step, loss, accuracy, lr in columns])
    op.drop_table("loss_chunks")


def _nan(x):
    return math.nan if x is None else x


def _none(x):
    return None if math.isnan(x) else x
