"""Checkpoints, the one module that reads and writes them: a running job's latest core.train.TrainState.

A state is stored as its scalars (JSON: step, last loss, the RNG state, Adam's t) and its float arrays
(the parameters and the optimizer's buffers as float64 in NumPy's .npz format): exact to the bit, and
8 bytes a number for wide models. Only the run that holds the job's claim may write its checkpoint."""
import io
import uuid
from typing import Optional

import numpy as np
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.train import TrainState
from services.store.jobs import Superseded
from services.store.models import Checkpoint, Job, utcnow


def save_checkpoint(session: Session, job_id, token: str, state: TrainState) -> int:
    """Replaces the job's checkpoint with `state`; returns its size in bytes. Raises Superseded when
    this run no longer holds the job."""
    job_id = _as_uuid(job_id)
    owned = session.scalar(select(Job.id).where(Job.id == job_id, Job.claim_token == token,
                                                Job.status == "running").with_for_update())
    if owned is None:
        session.rollback()
        raise Superseded(f"job {job_id} is no longer owned by this run")
    scalars, arrays = _encode(state)
    row = {"step": state.step, "saved_at": utcnow(), "state": scalars, "arrays": arrays}
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(Checkpoint).values(job_id=job_id, **row)
                    .on_conflict_do_update(index_elements=[Checkpoint.job_id], set_=row))
    session.commit()
    return len(arrays)


def load_checkpoint(session: Session, job_id) -> Optional[TrainState]:
    row = session.execute(select(Checkpoint.state, Checkpoint.arrays)
                          .where(Checkpoint.job_id == _as_uuid(job_id))).first()
    session.commit()
    return None if row is None else _decode(row.state, row.arrays)


def _encode(state: TrainState) -> tuple[dict, bytes]:
    buffers = {name: value for name, value in state.optimizer.items() if isinstance(value, list)}
    scalars = {"step": state.step, "last_loss": state.last_loss, "rng": state.rng,
               "optimizer": {name: value for name, value in state.optimizer.items() if name not in buffers}}
    out = io.BytesIO()
    np.savez(out, params=np.asarray(state.params, dtype=np.float64),
             **{f"optimizer.{name}": np.asarray(value, dtype=np.float64) for name, value in buffers.items()})
    return scalars, out.getvalue()


def _decode(scalars: dict, arrays: bytes) -> TrainState:
    with np.load(io.BytesIO(arrays), allow_pickle=False) as stored:
        floats = {name: stored[name].tolist() for name in stored.files}
    optimizer = dict(scalars["optimizer"])
    optimizer.update({name.removeprefix("optimizer."): value for name, value in floats.items()
                      if name.startswith("optimizer.")})
    return TrainState(step=scalars["step"], params=floats["params"], optimizer=optimizer, rng=scalars["rng"],
                      last_loss=scalars["last_loss"])


def _as_uuid(job_id) -> uuid.UUID:
    return job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))
