"""The tables. The job row is the source of truth for a job's state; the broker only delivers work."""
import uuid
from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import (JSON, CheckConstraint, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text,
                        TypeDecorator, UniqueConstraint, Uuid)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
SWEEP_STATUSES = ("running", "finished", "cancelled")
ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("succeeded", "failed", "cancelled")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Stores naive UTC and always hands back aware UTC, so SQLite and PostgreSQL read the same."""
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Experiment(Base):
    """A named group of jobs, unique per owner."""
    __tablename__ = "experiments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[Optional[str]] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("owner", "name", name="uq_experiments_owner_name"),)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(200))
    # Run metadata, beside the spec (the spec is the training recipe only).
    experiment_id: Mapped[Optional[uuid.UUID]] = mapped_column(
        ForeignKey("experiments.id", name="fk_jobs_experiment_id"))
    name: Mapped[str] = mapped_column(String(200))
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    notes: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    spec: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The last time the task was sent to the broker. A new job is sent as it is stored, so it starts at its
    # creation: no second write after the send (if the send fails, the sweeper sends it REDELIVER_QUEUED_AFTER
    # from here, as it would from created_at).
    enqueued_at: Mapped[Optional[datetime]] = mapped_column(default=utcnow)
    started_at: Mapped[Optional[datetime]]
    finished_at: Mapped[Optional[datetime]]
    heartbeat_at: Mapped[Optional[datetime]]
    attempts: Mapped[int] = mapped_column(default=0)
    claim_token: Mapped[Optional[str]] = mapped_column(String(32))
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    total_steps: Mapped[int]
    progress_step: Mapped[Optional[int]]  # steps done so far
    latest_loss: Mapped[Optional[float]]
    final_loss: Mapped[Optional[float]]
    metrics: Mapped[Optional[dict[str, Any]]]
    error: Mapped[Optional[str]] = mapped_column(Text)
    graph_error: Mapped[Optional[str]] = mapped_column(Text)  # why a job that asked for a graph has none
    # A succeeded job's graph is drawn after its results are saved: 'pending' (being drawn), 'ready', 'failed'
    # (graph_error says why); NULL when none was asked for or the job did not succeed. graph_attempts: runs
    # that started drawing it (the sweeper sends a pending one whose drawer died again, up to MAX_ATTEMPTS).
    graph_status: Mapped[Optional[str]] = mapped_column(String(16))
    graph_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    sweep_id: Mapped[Optional[uuid.UUID]] = mapped_column(ForeignKey("sweeps.id", name="fk_jobs_sweep_id", ondelete="SET NULL"))
    # Seconds per phase of the run that ended the job: queue_wait, claim, data, compile, steps,
    # final_metrics, graph, save (see services/worker/tasks.py).
    phase_seconds: Mapped[Optional[dict[str, Any]]]

    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES}", name="ck_jobs_status"),
        Index("ix_jobs_owner_created", "owner", "created_at"),
        Index("ix_jobs_status", "status"),
        # What lists filter and sort on besides created_at: an experiment's runs, the final loss.
        Index("ix_jobs_owner_experiment_created", "owner", "experiment_id", "created_at"),
        Index("ix_jobs_owner_final_loss", "owner", "final_loss"),
        Index("ix_jobs_sweep", "sweep_id"),
    )


class LossChunk(Base):
    """A block of a job's loss history: the points of steps [chunk * CHUNK_STEPS, (chunk + 1) * CHUNK_STEPS),
    packed as little-endian arrays (steps int64, loss/accuracy/lr float64, NaN where a value is absent),
    ordered by step, each step at most once. A curve of 100,000 points is ~100 rows, read without a
    Python object per point. Only services/store/history.py reads and writes these rows."""
    __tablename__ = "loss_chunks"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int]
    steps: Mapped[bytes] = mapped_column(LargeBinary)
    loss: Mapped[bytes] = mapped_column(LargeBinary)
    accuracy: Mapped[bytes] = mapped_column(LargeBinary)
    lr: Mapped[bytes] = mapped_column(LargeBinary)


class Artifact(Base):
    __tablename__ = "artifacts"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)  # 'params' (JSON text) or 'graph_svg'
    content: Mapped[str] = mapped_column(Text)


class Checkpoint(Base):
    """A running job's latest training state (core.train.TrainState), so a re-run after a crash goes on
    from there instead of from step 0. One row per job, replaced as training goes on."""
    __tablename__ = "checkpoints"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer)
    saved_at: Mapped[datetime] = mapped_column(default=utcnow)
    state: Mapped[dict[str, Any]]  # step, last loss, RNG state, optimizer scalars; the arrays are in `arrays`
    arrays: Mapped[bytes] = mapped_column(LargeBinary)  # float64 parameters and optimizer buffers (.npz)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(200))
    name: Mapped[Optional[str]] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # hex HMAC-SHA256 of the key
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[Optional[datetime]]


class Sweep(Base):
    """A search over a base spec. Its trials are ordinary jobs; this row and sweep_trials are the whole
    state of the search (the Optuna study is rebuilt from them on every advance)."""
    __tablename__ = "sweeps"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="running")
    sweep_spec: Mapped[dict[str, Any]]  # core.sweep_spec.SweepSpec, as submitted (with defaults)
    trials: Mapped[int]  # how many trials in all
    trials_created: Mapped[int] = mapped_column(default=0)  # never more than `trials`, even after a delete
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[Optional[datetime]]

    __table_args__ = (
        CheckConstraint(f"status IN {SWEEP_STATUSES}", name="ck_sweeps_status"),
        CheckConstraint("trials_created <= trials", name="ck_sweeps_trials_created"),
        Index("ix_sweeps_owner_created", "owner", "created_at"),
        Index("ix_sweeps_status", "status"),
    )


class SweepTrial(Base):
    __tablename__ = "sweep_trials"

    sweep_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0, 1, ... in the order asked
    job_id: Mapped[Optional[uuid.UUID]] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), unique=True)
    params: Mapped[dict[str, Any]]  # {dotted path: value}
    system_attrs: Mapped[dict[str, Any]]  # what Optuna's sampler and pruner keep per trial (grid id, rungs)
    pruned: Mapped[bool] = mapped_column(default=False)
    checked_step: Mapped[Optional[int]]  # the pruner has seen the history up to this step
class Worker(Base):
    """A worker process that is (or was) alive: it beats every HEARTBEAT_SECONDS, naming the job it runs
    (as of that beat). Rows of workers that stopped beating are dropped by the next worker that starts."""
    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime]
    current_job_id: Mapped[Optional[uuid.UUID]] = mapped_column(Uuid)  # no foreign key: a job may be deleted
