"""Loss histories, stored for reading curves: one `loss_chunks` row per job and block of CHUNK_STEPS steps,
its points packed as float64 arrays (see models.LossChunk).

Writes merge into the blocks: a step already stored keeps its first value (a re-run or a redelivery
writes the same steps again), so every step is stored at most once, and values are kept bit for bit.
A merge reads a block and writes it back, which is safe because only the run that owns the job ever
commits history (every writer's transaction also updates the job row under its claim token, and rolls
back when that fails); a superseded run's uncommitted block holds the new owner's write of the same key
until it rolls back (PostgreSQL), and SQLite's BEGIN IMMEDIATE serializes writers anyway."""
import math
import struct
import uuid
from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple, Optional

import numpy as np
from sqlalchemy import LargeBinary, case, null, select, type_coerce
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.store.models import LossChunk

CHUNK_STEPS = 1000
FLOAT, INT = np.dtype("<f8"), np.dtype("<i8")


class Point(NamedTuple):
    step: int
    loss: float
    accuracy: Optional[float] = None
    lr: Optional[float] = None


@dataclass(frozen=True)
class History:
    """A job's points (or a range of them) as arrays ordered by step; NaN where accuracy or lr is absent.
    It also reads like a list of Points (len, index, iterate) for callers that want one object per point."""
    steps: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    lr: np.ndarray

    def __len__(self):
        return len(self.steps)

    def __getitem__(self, i):
        return self.point(i)

    def __iter__(self):
        return (self.point(i) for i in range(len(self)))

    def __eq__(self, other):
        return list(self) == list(other)

    def point(self, i) -> Point:
        return Point(int(self.steps[i]), float(self.loss[i]), _absent_as_none(self.accuracy[i]),
                     _absent_as_none(self.lr[i]))

    def columns(self, indices=None) -> dict:
        """{'step': [...], 'loss': [...], 'accuracy': [...], 'lr': [...]} as plain lists (None for absent
        values), of all points or of `indices`: one pass per column in C, no object per point."""
        pick = (lambda a: a) if indices is None else (lambda a: a[indices])
        return {"step": pick(self.steps).tolist(), "loss": _nulls(pick(self.loss)),
                "accuracy": _nulls(pick(self.accuracy)), "lr": _nulls(pick(self.lr))}

    def records(self) -> list[dict]:
        """[{'step', 'loss', 'accuracy', 'lr'}, ...] as plain dicts (None for absent values), for orjson: the
        values are converted per column in C (`columns`) and zipped, with no model or encoder pass per point."""
        columns = self.columns()
        return [dict(zip(columns, values)) for values in zip(*columns.values())]


EMPTY = History(np.empty(0, INT), np.empty(0, FLOAT), np.empty(0, FLOAT), np.empty(0, FLOAT))


def read(session: Session, job_id: uuid.UUID, start: Optional[int] = None, end: Optional[int] = None) -> History:
    """The points of steps start..end (inclusive; None: unbounded), ordered by step."""
    rows = _read_rows(session, job_id, start, end)
    if not rows:
        return EMPTY
    steps, loss = _steps(rows), _column(rows, LOSS)
    lo, hi = _bounds(steps, start, end)
    whole = lo == 0 and hi == len(steps)
    accuracy, lr = _column(rows, ACCURACY), _column(rows, LR)
    return History(steps, loss, accuracy, lr) if whole else History(
        steps[lo:hi], loss[lo:hi], accuracy[lo:hi], lr[lo:hi])


def read_picked(session: Session, job_id: uuid.UUID, pick: Callable[[np.ndarray], np.ndarray],
                start: Optional[int] = None, end: Optional[int] = None) -> tuple[History, int]:
    """The points of steps start..end that `pick(loss)` chooses (ascending indices into that range's loss
    array, e.g. a downsampling), and how many points the range holds. Only steps and loss are unpacked whole;
    accuracy and lr are read at the chosen points alone, straight from the stored blocks."""
    rows = _read_rows(session, job_id, start, end)
    if not rows:
        return EMPTY, 0
    steps, loss = _steps(rows), _column(rows, LOSS)
    lo, hi = _bounds(steps, start, end)
    chosen = lo + np.asarray(pick(loss[lo:hi]), dtype=np.intp)
    if len(chosen) * UNPACK_WHOLE_ABOVE < len(loss):  # few points out of many: unpack just those
        sizes = np.array([len(row[LOSS]) // FLOAT.itemsize for row in rows])
        blocks = np.searchsorted(np.cumsum(sizes), chosen, "right")
        offsets = chosen - (np.cumsum(sizes) - sizes)[blocks]
        accuracy, lr = (_gather(rows, column, blocks, offsets) for column in (ACCURACY, LR))
    else:
        accuracy, lr = (_column(rows, column)[chosen] for column in (ACCURACY, LR))
    picked = History(steps[chosen], loss[chosen], accuracy, lr)
    return picked, hi - lo


CHUNK, STEPS, LOSS, ACCURACY, LR = range(5)  # the columns of _read_rows' rows
UNPACK_WHOLE_ABOVE = 20  # read_picked unpacks accuracy and lr whole when it picks over 1/20 of the points


def _read_rows(session: Session, job_id: uuid.UUID, start: Optional[int], end: Optional[int]) -> list:
    """The stored blocks overlapping start..end, in order. A full block's steps are not read: a block holds each
    of its CHUNK_STEPS steps at most once, so a full one holds exactly chunk * CHUNK_STEPS + 0..CHUNK_STEPS-1
    (a quarter less to read; _steps makes them)."""
    stored_steps = type_coerce(case((LossChunk.count == CHUNK_STEPS, null()), else_=LossChunk.steps), LargeBinary)
    query = select(LossChunk.chunk, stored_steps, LossChunk.loss, LossChunk.accuracy, LossChunk.lr).where(
        LossChunk.job_id == job_id)
    if start is not None:
        query = query.where(LossChunk.chunk >= start // CHUNK_STEPS)
    if end is not None:
        query = query.where(LossChunk.chunk <= end // CHUNK_STEPS)
    return session.execute(query.order_by(LossChunk.chunk)).all()


def _steps(rows) -> np.ndarray:
    if all(row[STEPS] is None for row in rows):  # full blocks only (a long finished history): one operation
        chunks = np.array([row[CHUNK] for row in rows], INT)
        return (chunks[:, None] * CHUNK_STEPS + np.arange(CHUNK_STEPS, dtype=INT)).ravel()
    return np.concatenate([np.frombuffer(row[STEPS], INT) if row[STEPS] is not None
                           else np.arange(row[CHUNK] * CHUNK_STEPS, (row[CHUNK] + 1) * CHUNK_STEPS, dtype=INT)
                           for row in rows])


def _column(rows, column: int) -> np.ndarray:
    return np.concatenate([np.frombuffer(row[column], FLOAT) for row in rows])


def _bounds(steps: np.ndarray, start: Optional[int], end: Optional[int]) -> tuple[int, int]:
    """The slice of `steps` (ascending) that start..end (inclusive; None: unbounded) covers."""
    lo = 0 if start is None else int(np.searchsorted(steps, start, "left"))
    hi = len(steps) if end is None else int(np.searchsorted(steps, end, "right"))
    return lo, hi


def _gather(rows, column: int, blocks: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Values of `column` at (block, offset) pairs, unpacked one by one: cheaper than unpacking every block
    when few points are wanted out of many."""
    unpack = _FLOAT.unpack_from
    return np.array([unpack(rows[b][column], o * FLOAT.itemsize)[0]
                     for b, o in zip(blocks.tolist(), offsets.tolist())], FLOAT)


_FLOAT = struct.Struct("<d")


def write(session: Session, job_id: uuid.UUID, points: Iterable[Point]) -> None:
    """Adds the points of steps not stored yet; a step already stored (or repeated in `points`) keeps its
    first value. Points with a non-finite loss are not stored (a NaN has no place on a curve)."""
    new = _by_block(points)
    if not new:
        return
    # Blocks not stored yet go in with one statement, stored ones left alone (ON CONFLICT DO NOTHING): a small
    # job's whole history is one round trip. Only blocks already there (a re-run, a redelivery, a block filled
    # over several writes) are then read and merged.
    rows = [_block_row(job_id, chunk, by_step, None) for chunk, by_step in new.items()]
    inserted = set(session.scalars(_insert_unless_stored(session).returning(LossChunk.chunk), rows))
    if len(inserted) == len(new):
        return
    stored = session.execute(
        select(LossChunk.chunk, LossChunk.steps, LossChunk.loss, LossChunk.accuracy, LossChunk.lr)
        .where(LossChunk.job_id == job_id, LossChunk.chunk.in_(set(new) - inserted)))
    for old in stored:
        row = _block_row(job_id, old.chunk, new[old.chunk], old)
        if row is not None:
            session.execute(LossChunk.__table__.update()
                            .where(LossChunk.job_id == job_id, LossChunk.chunk == old.chunk).values(row))


def new_block_rows(job_id: uuid.UUID, points: Iterable[Point]) -> list[dict]:
    """The `loss_chunks` rows that `points` make when none of their blocks is stored yet (what `write` inserts
    then), for a caller that writes them in a statement of its own (jobs.finish_job)."""
    return [_block_row(job_id, chunk, by_step, None) for chunk, by_step in _by_block(points).items()]


def _by_block(points: Iterable[Point]) -> dict[int, dict[int, Point]]:
    """block -> step -> point, the first point of a step kept, points with a non-finite loss left out."""
    new: dict[int, dict[int, Point]] = {}
    for p in points:
        if math.isfinite(p.loss):
            new.setdefault(p.step // CHUNK_STEPS, {}).setdefault(p.step, p)
    return new


def _block_row(job_id: uuid.UUID, chunk: int, by_step: dict[int, Point], old) -> Optional[dict]:
    """The `loss_chunks` row of block `chunk`: the points of `by_step` merged into `old` (a stored row, or None);
    None when every one of those steps is stored already (the first write of a step wins)."""
    old_steps = np.frombuffer(old.steps, INT) if old else EMPTY.steps
    fresh = sorted(set(by_step) - set(old_steps.tolist()))
    if not fresh:
        return None
    added = [by_step[step] for step in fresh]
    columns = [np.array(fresh, INT),
               np.array([p.loss for p in added], FLOAT),
               np.array([_none_as_nan(p.accuracy) for p in added], FLOAT),
               np.array([_none_as_nan(p.lr) for p in added], FLOAT)]
    if old:
        columns = [np.concatenate([np.frombuffer(blob, column.dtype), column])
                   for blob, column in zip((old.steps, old.loss, old.accuracy, old.lr), columns)]
        order = np.argsort(columns[0], kind="stable")
        columns = [column[order] for column in columns]
    return {"job_id": job_id, "chunk": chunk, "count": len(columns[0]),
            **{name: column.tobytes() for name, column in zip(("steps", "loss", "accuracy", "lr"), columns)}}


def _insert_unless_stored(session: Session):
    """INSERT ... ON CONFLICT (job_id, chunk) DO NOTHING, in the session's dialect (PostgreSQL or SQLite)."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    return insert(LossChunk.__table__).on_conflict_do_nothing(index_elements=["job_id", "chunk"])


def _none_as_nan(x: Optional[float]) -> float:
    return math.nan if x is None else x


def _absent_as_none(x) -> Optional[float]:
    return float(x) if math.isfinite(x) else None


def _nulls(values: np.ndarray) -> list:
    """values.tolist() with None in place of NaN/inf (JSON has neither)."""
    out = values.tolist()
    if not np.isfinite(values).all():
        for i in np.flatnonzero(~np.isfinite(values)).tolist():
            out[i] = None
    return out
