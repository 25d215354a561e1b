"""The one module that reads and writes jobs, loss points and artifacts.

Every function takes a Session first and commits its own writes. Worker-side writes
are guarded by the claim token that `claim_job` hands out: once another run has
claimed the job, the old run's writes change nothing and raise `Superseded`."""
import base64
import hashlib
import json
import math
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Iterable, Optional

from sqlalchemy import (Integer, LargeBinary, String, Text, and_, bindparam, delete, exists, func, insert, literal,
                        literal_column, or_, select, text, true, update)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.spec import JobSpec
from services.store import history, search
from services.store.history import History, Point  # noqa: F401  (Point: the type callers write)
from services.store.models import ACTIVE_STATUSES, Artifact, Checkpoint, Job, LossChunk, UTCDateTime, utcnow

ARTIFACT_KINDS = ("params", "graph_svg")
STEP_LIMIT = 2**31 - 1  # the largest INTEGER; no job has that many steps


OWNER_LOCK_SPACE = 0x6D6773  # "mgs": the key space of PostgreSQL advisory locks on an owner's job cap


class Superseded(Exception):
    """Another run has claimed this job (or it is no longer running): this run must stop writing."""


class TooManyActiveJobs(Exception):
    """The owner has `active` jobs queued or running, and there is no room under `limit` for more."""

    def __init__(self, active: int, limit: int):
        super().__init__(f"{active} jobs queued or running, the limit is {limit}")
        self.active, self.limit = active, limit


# ---- API side ---------------------------------------------------------------------------------------------

def create_job(session: Session, owner: str, spec: JobSpec, name: Optional[str] = None,
               tags: Optional[dict] = None, notes: str = "", experiment_id=None,
               max_active: Optional[int] = None) -> Job:
    """Stores a queued job. With `max_active`, only while the owner has fewer active (queued or running) jobs,
    else raises TooManyActiveJobs: the count and the insert are one transaction that holds the owner's cap
    (lock_owner_jobs), so concurrent submissions cannot all see the same last free slot."""
    job_id = uuid.uuid4()
    values = {"id": job_id, "owner": owner, "status": "queued", "spec": spec.model_dump(mode="json"),
              "total_steps": spec.steps, "name": name or default_name(spec.data.kind, job_id),
              "tags": dict(tags or {}), "notes": notes, "experiment_id": experiment_id}
    if max_active is not None and _is_postgresql(session):
        return _create_if_room(session, values, max_active)
    if max_active is not None:
        room = room_for_active_jobs(session, owner, max_active)
        if room <= 0:
            session.rollback()
            raise TooManyActiveJobs(max_active - room, max_active)
    job = Job(**values)
    session.add(job)
    session.commit()
    return job


def _create_if_room(session: Session, values: dict, max_active: int) -> Job:
    """create_job under the cap on PostgreSQL: after the owner's lock, the count and the insert are one
    statement (INSERT ... SELECT ... WHERE the count is under the cap), built once: one round trip less inside
    the lock, which every submission of the owner waits for, and no unit of work to flush. The statement's
    snapshot is taken after the lock is granted, as the separate count's was. Returns the stored job (not in
    the session: what was inserted, with the defaults the ORM would have given it)."""
    now = utcnow()
    values = {**values, "created_at": now, "enqueued_at": now, "attempts": 0, "cancel_requested": False,
              "graph_attempts": 0}
    lock_owner_jobs(session, values["owner"])
    stored = session.execute(_insert_if_room(tuple(values)), {
        "owner": values["owner"], "cap": max_active, **{f"v_{name}": value for name, value in values.items()}
    }).first()
    if stored is None:
        active = _count_active(session, values["owner"])
        session.rollback()
        raise TooManyActiveJobs(active, max_active)
    session.commit()
    return Job(**values)


@lru_cache(maxsize=8)
def _insert_if_room(names: tuple):
    jobs = Job.__table__
    active = (select(func.count()).select_from(jobs)
              .where(jobs.c.owner == bindparam("owner"), jobs.c.status.in_(ACTIVE_STATUSES)).scalar_subquery())
    source = select(*(bindparam(f"v_{name}", type_=jobs.c[name].type) for name in names)).where(
        active < bindparam("cap", type_=Integer))
    return insert(jobs).from_select(list(names), source).returning(jobs.c.id)


def default_name(data_kind: str, job_id: uuid.UUID) -> str:
    """A readable name for a job nobody named: its data and the start of its id, e.g. `moons-a3f2`."""
    return f"{data_kind}-{job_id.hex[:4]}"


def update_job(session: Session, job_id, **changes) -> Job:
    """Changes a job's run metadata: name, tags (replaced whole) and notes; never its spec or results."""
    unknown = set(changes) - {"name", "tags", "notes"}
    if unknown:
        raise ValueError(f"only name, tags and notes can change, not {sorted(unknown)}")
    if changes:
        session.execute(_update_jobs().where(Job.id == _as_uuid(job_id)).values(**changes))
        session.commit()
    return get_job(session, job_id)


def delete_jobs(session: Session, job_ids: list) -> None:
    """Removes jobs with their history and artifacts, for good (the caller commits). A running job is
    asked to cancel first; its worker then finds its row gone at its next write and stops (Superseded).
    Marking the rows first locks them, so a worker's batch in flight lands before the delete, not after."""
    ids = [_as_uuid(j) for j in job_ids]
    if not ids:
        return
    session.execute(_update_jobs().where(Job.id.in_(ids)).values(cancel_requested=True))
    session.execute(delete(LossChunk).where(LossChunk.job_id.in_(ids)))
    session.execute(delete(Artifact).where(Artifact.job_id.in_(ids)))
    session.execute(delete(Checkpoint).where(Checkpoint.job_id.in_(ids)))
    session.execute(delete(Job).where(Job.id.in_(ids)))


def delete_job(session: Session, job_id) -> None:
    delete_jobs(session, [job_id])
    session.commit()


def get_job(session: Session, job_id, owner: Optional[str] = None) -> Optional[Job]:
    job = session.get(Job, _as_uuid(job_id), populate_existing=True)
    if job is None or (owner is not None and job.owner != owner):
        return None
    return job


def list_jobs(session: Session, owner: str, status: Optional[str] = None, limit: int = 50,
              cursor: Optional[str] = None, experiment_id=None, sweep_id=None, tags: Optional[dict] = None,
              conditions: Iterable[search.Condition] = (), sort: Optional[str] = None, descending: bool = True
              ) -> tuple[list[Job], Optional[str]]:
    """Newest first, or by `sort` (a search.sort_column key; jobs without a value come last, ties newest first).
    `cursor` is the opaque `next_cursor` of the previous page; a malformed one (or one made for another
    sort) raises ValueError. `tags` keeps the jobs that have every one of those tags (a value of None: the key
    with any value); `conditions` come from search.parse_filter."""
    if sort == "created_at" and descending:
        sort = None  # the default order, with its plain cursor
    query = select(Job).where(Job.owner == owner)
    if status is not None:
        query = query.where(Job.status == status)
    if experiment_id is not None:
        query = query.where(Job.experiment_id == _as_uuid(experiment_id))
    if sweep_id is not None:
        query = query.where(Job.sweep_id == _as_uuid(sweep_id))
    for key, value in (tags or {}).items():
        tag = Job.tags[key].as_string()
        query = query.where(tag.is_not(None) if value is None else tag == value)
    query = query.where(*search.where(list(conditions)))
    key = None if sort is None else search.sort_column(sort)
    if cursor is not None:
        created_at, last_id, *after = _decode_cursor(cursor)
        newer = or_(Job.created_at < created_at, and_(Job.created_at == created_at, Job.id < last_id))
        if after != ([] if key is None else [sort, descending, after[-1] if after else None]):
            raise ValueError(f"cursor {cursor!r} belongs to another sort order")
        if key is not None:
            newer = _after(key, descending, _sort_value(sort, after[-1], cursor), newer)
        query = query.where(newer)
    if key is not None:
        query = query.order_by(key.is_(None), key.desc() if descending else key.asc())
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    rows = session.execute(query.add_columns(*([] if key is None else [key]))).all()
    session.commit()
    if len(rows) <= limit:
        return [row[0] for row in rows], None
    rows = rows[:limit]
    last = rows[-1]
    value = None if key is None else last[1].isoformat() if isinstance(last[1], datetime) else last[1]
    return [row[0] for row in rows], _encode_cursor(last[0], *([] if key is None else [sort, descending, value]))


def _sort_value(sort: str, value, cursor: str):
    """A cursor's sort value, of the sort key's type (a cursor comes from the client: trust nothing)."""
    if value is None:
        return None
    try:
        if sort == "created_at":
            return datetime.fromisoformat(value).astimezone(timezone.utc)
        if sort == "name" or search.FIELDS[sort] == "string":
            if isinstance(value, str):
                return value
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
            return float(value)
    except (TypeError, ValueError, OverflowError):
        pass
    raise ValueError(f"malformed cursor {cursor!r}")


def _after(key, descending: bool, value, newer):
    """Rows after (value, created_at, id) in the order: key (nulls last), then newest first."""
    if value is None:
        return and_(key.is_(None), newer)
    beyond = key < value if descending else key > value
    return or_(key.is_(None), beyond, and_(key == value, newer))


def get_loss_points(session: Session, job_id, start: Optional[int] = None, end: Optional[int] = None) -> History:
    """The one reader of a job's loss history: steps start..end (inclusive), ordered by step, as arrays
    (`.steps`, `.loss`, `.accuracy`, `.lr`; see history.History), which also read as a list of Points."""
    points = read_loss_points(session, job_id, start, end)
    session.commit()
    return points


def get_loss_curve(session: Session, job_id, pick, start: Optional[int] = None,
                   end: Optional[int] = None) -> tuple[History, int]:
    """`get_loss_points` of only the points that `pick(loss)` chooses (ascending indices into the range's loss
    array, e.g. a downsampling; see history.read_picked), and how many points the range holds."""
    curve = history.read_picked(session, _as_uuid(job_id), pick, None if start is None else _clamp_step(start),
                                None if end is None else _clamp_step(end))
    session.commit()
    return curve


def read_loss_points(session: Session, job_id, start: Optional[int] = None, end: Optional[int] = None) -> History:
    """`get_loss_points` inside the caller's transaction (it does not commit)."""
    return history.read(session, _as_uuid(job_id), None if start is None else _clamp_step(start),
                        None if end is None else _clamp_step(end))


def get_artifact(session: Session, job_id, kind: str) -> Optional[str]:
    if kind not in ARTIFACT_KINDS:
        raise ValueError(f"unknown artifact kind {kind!r}, expected one of {ARTIFACT_KINDS}")
    content = session.scalar(select(Artifact.content).where(Artifact.job_id == _as_uuid(job_id),
                                                            Artifact.kind == kind))
    session.commit()
    return content


def cancel_job(session: Session, job_id) -> Job:
    """Queued: cancelled at once (it never starts). Running, or succeeded with its graph still being drawn:
    asks the worker to stop (a graph stopped that way is 'failed', saying so). Otherwise final: unchanged."""
    job_id = _as_uuid(job_id)
    now = utcnow()
    session.execute(_update_jobs().where(Job.id == job_id, Job.status == "queued")
                    .values(status="cancelled", finished_at=now, cancel_requested=True))
    session.execute(_update_jobs().where(Job.id == job_id, or_(Job.status == "running", Job.graph_status == "pending"))
                    .values(cancel_requested=True))
    session.commit()
    job = get_job(session, job_id)
    if job is None:
        raise LookupError(f"job {job_id} does not exist")
    return job


def count_active_jobs(session: Session, owner: str) -> int:
    count = _count_active(session, owner)
    session.commit()
    return count


def room_for_active_jobs(session: Session, owner: str, max_active: int) -> int:
    """How many more active jobs the owner may have (<= 0: none), in the caller's transaction, which from
    here on holds the owner's cap: until it ends, no other transaction that asks can add active jobs for
    this owner, so the jobs it inserts fit in the room it was told."""
    lock_owner_jobs(session, owner)
    return max_active - _count_active(session, owner)


def lock_owner_jobs(session: Session, owner: str) -> None:
    """Until the transaction ends, serializes the transactions that add active jobs for this owner. On
    PostgreSQL a transaction-level advisory lock keyed by a hash of the owner (two owners on one hash only
    wait for each other); on SQLite nothing more is needed: every transaction began IMMEDIATE
    (services/store/db.py), so this one already holds the database's only write lock."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(hashlib.blake2b(owner.encode(), digest_size=4).digest(), "big", signed=True)
        session.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"), {"space": OWNER_LOCK_SPACE, "key": key})


def _count_active(session: Session, owner: str) -> int:
    return session.scalar(select(func.count()).select_from(Job)
                          .where(Job.owner == owner, Job.status.in_(ACTIVE_STATUSES)))


def count_jobs_by_status(session: Session) -> dict[str, int]:
    counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    session.commit()
    return counts


# ---- worker side ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    token: str
    spec: dict  # as stored; the worker validates it (a spec that no longer validates fails the job)
    queue_wait: float  # seconds from the job's creation to this claim
    attempt: int  # 1 for the first run of the job
    sweep_id: Optional[uuid.UUID]  # the sweep the job is a trial of


def claim_job(session: Session, job_id, stale_after: float, max_attempts: int) -> Optional[str]:
    """Atomically take a queued job, or a running one whose worker stopped beating. Returns the claim token,
    or None when the job is not claimable (already taken, final, cancelled or asked to cancel, or out of
    attempts; the sweeper cancels a dead worker's job that was asked to cancel)."""
    claim = claim_and_load(session, job_id, stale_after, max_attempts)
    return None if claim is None else claim.token


def claim_and_load(session: Session, job_id, stale_after: float, max_attempts: int) -> Optional[Claim]:
    """`claim_job` that also hands back what the run needs (spec, attempt, sweep), in the same statement."""
    now = utcnow()
    token = secrets.token_hex(16)
    rows, _ = _one_statement_without_waiting_for_the_disk(
        session, _claim_statement(_is_postgresql(session)),
        {"job_id": _as_uuid(job_id), "max_attempts": max_attempts, "stale_before": now - timedelta(seconds=stale_after),
         "new_token": token, "claimed_at": now})
    row = rows[0] if rows else None
    if row is None:
        return None
    return Claim(token, row.spec, max(0.0, (now - row.created_at).total_seconds()), row.attempts, row.sweep_id)


@lru_cache
def _claim_statement(postgresql: bool):
    """The claim's UPDATE, built once (with its parameters bound at execution): building it, and its cache key,
    cost ~1 ms of CPU per job."""
    claimable = and_(Job.cancel_requested.is_(False),
                     or_(Job.status == "queued",
                         and_(Job.status == "running", Job.heartbeat_at < bindparam("stale_before"))))
    statement = (_update_jobs().where(Job.id == bindparam("job_id"), Job.attempts < bindparam("max_attempts"), claimable)
                 .values(status="running", attempts=Job.attempts + 1, claim_token=bindparam("new_token", type_=String),
                         heartbeat_at=bindparam("claimed_at", type_=UTCDateTime),
                         started_at=bindparam("claimed_at", type_=UTCDateTime), error=None)
                 .returning(Job.spec, Job.created_at, Job.attempts, Job.sweep_id))
    return statement.where(NO_FSYNC) if postgresql else statement


def heartbeat(session: Session, job_id, token: str) -> bool:
    """Refreshes the heartbeat (of a run training, or drawing a succeeded job's graph); False when this run
    no longer owns the job."""
    statement = (_update_jobs().where(Job.id == _as_uuid(job_id), Job.claim_token == token,
                                      or_(Job.status == "running", Job.graph_status == "pending"))
                 .values(heartbeat_at=utcnow()))
    _, count = _one_statement_without_waiting_for_the_disk(
        session, statement.where(NO_FSYNC) if _is_postgresql(session) else statement)
    return count == 1


def record_progress(session: Session, job_id, token: str, points: Iterable[Point], steps_done: int,
                    latest_loss: Optional[float]) -> bool:
    """Writes a batch of loss points with the progress fields; returns whether a cancel was requested."""
    cancel_requested = session.scalar(
        _owned(job_id, token).values(progress_step=steps_done, latest_loss=_finite(latest_loss))
        .returning(Job.cancel_requested))
    if cancel_requested is None:
        session.rollback()
        raise Superseded(f"job {job_id} is no longer owned by this run")
    _insert_points(session, job_id, points)
    session.commit()
    return cancel_requested


def finish_job(session: Session, job_id, token: str, status: str, points: Iterable[Point], steps_done: int,
               metrics: dict, params_json: Optional[str], *, phase_seconds: Optional[dict] = None,
               graph_pending: bool = False) -> Optional[dict]:
    """Final results and the status change (succeeded or cancelled), in one transaction. `phase_seconds` gets
    its `save` phase extended by this write up to its commit (the commit itself is not counted); on PostgreSQL,
    where the write is one statement that also stores the phases (_finish_in_one_statement), up to that
    statement: its round trip and commit are not counted.
    graph_pending: the job succeeds now and this run draws its graph next (`store_graph`): it keeps the
    claim and the heartbeat until then, so that a run that dies while drawing is noticed and redone.
    Returns the phase_seconds it stored."""
    if status not in ("succeeded", "cancelled"):
        raise ValueError(f"finish_job ends a job as succeeded or cancelled, not {status!r}")
    graph = {}
    if status == "succeeded" and graph_pending:
        graph = {"graph_status": "pending", "graph_attempts": 1, "heartbeat_at": utcnow()}
    started = time.perf_counter()
    if _is_postgresql(session):
        points = list(points)
        done = _finish_in_one_statement(session, job_id, token, status, points, steps_done, metrics, params_json,
                                        phase_seconds, graph, started)
        if done is not None:
            return done[0]
    _insert_points(session, job_id, points)
    if params_json is not None:
        session.execute(insert(Artifact), [{"job_id": _as_uuid(job_id), "kind": "params", "content": params_json}])
    if phase_seconds is not None:
        phase_seconds = {**phase_seconds, "save": phase_seconds.get("save", 0.0) + time.perf_counter() - started}
    final_loss = _finite(metrics.get("final_loss"))
    # The job row last, in one statement: if this run no longer owns the job, the rollback takes back the
    # rows above too (only the owner's writes ever commit; see history.py).
    _end(session, job_id, token, status=status, progress_step=steps_done, latest_loss=final_loss,
         final_loss=final_loss, metrics=_json_safe(metrics), phase_seconds=phase_seconds, **graph)
    session.commit()
    return phase_seconds


FINISH_MAX_BLOCKS = 4  # finish_job's one statement carries at most this many new history blocks


def _finish_in_one_statement(session: Session, job_id, token: str, status: str, points: list, steps_done: int,
                             metrics: dict, params_json: Optional[str], phase_seconds: Optional[dict], graph: dict,
                             started: float) -> Optional[tuple]:
    """finish_job on PostgreSQL in one statement, its own transaction (autocommit, so one round trip instead
    of six: BEGIN, the history's INSERT, the parameters' INSERT, the job's UPDATE, the checkpoint's DELETE,
    COMMIT; and one statement built once instead of four, ~40 % of a small job's worker CPU). Its commit waits
    for the disk like any other: these are a job's results.

    The job's UPDATE (under the claim token, as `_end`) is a data-modifying CTE that the other writes read,
    so they write only where it did: all of it or nothing, as in the transaction. It also requires that none of
    the history's blocks is stored yet, so that every point is inserted whole (no merge). (Only the run that
    owns the job writes its history, and a superseded run's write commits before the claim that superseded
    it, so what this statement's snapshot shows is all there is.) Returns (phase_seconds,) when it wrote;
    None when it wrote nothing, for finish_job's transaction to do the work or say why not (not owned:
    Superseded; blocks already stored, e.g. a long job's earlier batches: merged), and when the history has
    more than FINISH_MAX_BLOCKS new blocks."""
    job_uuid = _as_uuid(job_id)
    blocks = history.new_block_rows(job_uuid, points)
    if len(blocks) > FINISH_MAX_BLOCKS:
        return None
    if phase_seconds is not None:
        phase_seconds = {**phase_seconds, "save": phase_seconds.get("save", 0.0) + time.perf_counter() - started}
    final_loss = _finite(metrics.get("final_loss"))
    values = {"finished_at": utcnow(), "heartbeat_at": None, "status": status, "progress_step": steps_done,
              "latest_loss": final_loss, "final_loss": final_loss, "metrics": _json_safe(metrics),
              "phase_seconds": phase_seconds, **graph}
    parameters = {"job_id": job_uuid, "token": token, "params": params_json,
                  **{f"v_{name}": value for name, value in values.items()}}
    for i, block in enumerate(blocks):
        parameters.update({f"{column}_{i}": block[column] for column in FINISH_BLOCK_COLUMNS})
    statement = _finish_statement(len(blocks), params_json is not None, tuple(sorted(values)))
    if session.in_transaction():
        session.commit()  # (the autocommit connection is a transaction of its own)
    try:
        owned = session.connection(execution_options={"isolation_level": "AUTOCOMMIT"}).execute(
            statement, parameters).scalar_one()
    except IntegrityError:  # a block stored after all: nothing was written; finish_job's transaction merges
        session.rollback()
        return None
    session.commit()  # (nothing to send: the statement committed itself)
    return (phase_seconds,) if owned == 1 else None


FINISH_BLOCK_COLUMNS = ("chunk", "count", "steps", "loss", "accuracy", "lr")


@lru_cache(maxsize=64)
def _finish_statement(blocks: int, with_params: bool, value_names: tuple):
    """_finish_in_one_statement's statement for `blocks` history blocks, with or without parameters, setting
    `value_names` on the job (bound as v_<name>); built once for each."""
    jobs, chunks = Job.__table__, LossChunk.__table__
    chunk_numbers = [bindparam(f"chunk_{i}", type_=Integer) for i in range(blocks)]
    none_stored = ~exists().where(chunks.c.job_id == bindparam("job_id"), chunks.c.chunk.in_(chunk_numbers)) \
        if blocks else true()
    ended = (update(jobs)
             .where(jobs.c.id == bindparam("job_id"), jobs.c.claim_token == bindparam("token"),
                    jobs.c.status == "running", none_stored)
             .values({name: bindparam(f"v_{name}", type_=jobs.c[name].type) for name in value_names})
             .returning(jobs.c.id).cte("ended"))
    writes = []
    if blocks:
        rows = [select(ended.c.id, bindparam(f"chunk_{i}", type_=Integer), bindparam(f"count_{i}", type_=Integer),
                       *(bindparam(f"{column}_{i}", type_=LargeBinary) for column in FINISH_BLOCK_COLUMNS[2:]))
                for i in range(blocks)]
        source = rows[0] if blocks == 1 else rows[0].union_all(*rows[1:])
        writes.append(insert(chunks).from_select(["job_id", *FINISH_BLOCK_COLUMNS], source).cte("points"))
    if with_params:
        artifacts = Artifact.__table__
        writes.append(insert(artifacts).from_select(
            ["job_id", "kind", "content"],
            select(ended.c.id, literal("params", String), bindparam("params", type_=Text))).cte("params"))
    checkpoints_ = Checkpoint.__table__
    writes.append(delete(checkpoints_).where(checkpoints_.c.job_id.in_(select(ended.c.id))).cte("checkpoint"))
    return select(select(func.count()).select_from(ended).scalar_subquery()).add_cte(*writes)


@dataclass(frozen=True)
class GraphClaim:
    token: str
    spec: dict
    params_json: Optional[str]
    phase_seconds: Optional[dict]


def claim_graph(session: Session, job_id, stale_after: float, max_attempts: int) -> Optional[GraphClaim]:
    """Takes a succeeded job's pending graph whose drawer stopped beating (it died while drawing), with what
    drawing it again needs; None when there is none to take (drawn, being drawn, or out of attempts)."""
    now = utcnow()
    token = secrets.token_hex(16)
    row = session.execute(
        _update_jobs().where(Job.id == _as_uuid(job_id), Job.status == "succeeded", Job.graph_status == "pending",
                             Job.cancel_requested.is_(False), Job.graph_attempts < max_attempts,
                             Job.heartbeat_at < now - timedelta(seconds=stale_after))
        .values(claim_token=token, heartbeat_at=now, graph_attempts=Job.graph_attempts + 1)
        .returning(Job.spec, Job.phase_seconds)).first()
    if row is None:
        session.commit()
        return None
    params_json = session.scalar(select(Artifact.content).where(Artifact.job_id == _as_uuid(job_id),
                                                                Artifact.kind == "params"))
    session.commit()
    return GraphClaim(token, row.spec, params_json, row.phase_seconds)


def graph_wanted(session: Session, job_id, token: str) -> Optional[bool]:
    """While drawing: None when this run no longer owns the job's pending graph (the job was deleted, or
    another run took the graph), False when a cancel was asked, True otherwise."""
    cancel_requested = session.scalar(select(Job.cancel_requested).where(
        Job.id == _as_uuid(job_id), Job.claim_token == token, Job.graph_status == "pending"))
    session.commit()
    return None if cancel_requested is None else not cancel_requested


def store_graph(session: Session, job_id, token: str, svg: Optional[str], error: Optional[str],
                phase_seconds: Optional[dict] = None) -> bool:
    """A succeeded job's graph, drawn after its results: the SVG (ready) or why there is none (failed), and
    the job's phase_seconds with the graph phase. False, writing nothing, when this run no longer owns it."""
    values = {"graph_status": "ready" if svg is not None else "failed", "graph_error": error,
              "claim_token": None, "heartbeat_at": None}
    if phase_seconds is not None:
        values["phase_seconds"] = phase_seconds
    owned = session.execute(
        _update_jobs().where(Job.id == _as_uuid(job_id), Job.claim_token == token, Job.status == "succeeded",
                             Job.graph_status == "pending").values(**values)).rowcount == 1
    if owned and svg is not None:
        session.execute(insert(Artifact), [{"job_id": _as_uuid(job_id), "kind": "graph_svg", "content": svg}])
    session.commit()
    return owned


def fail_job(session: Session, job_id, token: str, reason: str, points: Iterable[Point] = (),
             steps_done: Optional[int] = None) -> None:
    """Marks the job failed with a readable reason, keeping the history written so far (plus `points`)."""
    values = {"status": "failed", "error": reason}
    if steps_done is not None:
        values["progress_step"] = steps_done
    _end(session, job_id, token, **values)
    _insert_points(session, job_id, points)
    session.commit()


def take_jobs_to_redeliver(session: Session, stale_after: float, redeliver_after: float,
                           max_attempts: int) -> list[uuid.UUID]:
    """Jobs to send again: queued but not (re)sent for `redeliver_after` seconds, and running ones whose
    heartbeat is older than `stale_after` (sent again at most once per `stale_after`, while they wait for
    a free worker). Each is marked as sent, atomically, so that of several sweepers only one sends it."""
    now = utcnow()
    stale = now - timedelta(seconds=stale_after)
    not_sent_lately = or_(Job.enqueued_at.is_(None), Job.enqueued_at < stale)
    waiting = or_(and_(Job.status == "queued", func.coalesce(Job.enqueued_at, Job.created_at)
                       < now - timedelta(seconds=redeliver_after)),
                  and_(Job.status == "running", Job.heartbeat_at < stale, Job.attempts < max_attempts,
                       not_sent_lately),
                  # a succeeded job whose graph's drawer died: the task's run draws it (see claim_graph)
                  and_(Job.status == "succeeded", Job.graph_status == "pending", Job.heartbeat_at < stale,
                       Job.graph_attempts < max_attempts, Job.cancel_requested.is_(False), not_sent_lately))
    taken = list(session.scalars(_update_jobs().where(waiting).values(enqueued_at=now).returning(Job.id)))
    session.commit()
    return taken


def forget_sends(session: Session, job_ids: list) -> None:
    """Undoes `take_jobs_to_redeliver`'s mark for jobs that could not be sent, so the next sweep sends them."""
    if job_ids:
        session.execute(_update_jobs().where(Job.id.in_([_as_uuid(j) for j in job_ids])).values(enqueued_at=None))
        session.commit()


def cancel_abandoned_jobs(session: Session, stale_after: float) -> list[uuid.UUID]:
    """Running jobs asked to cancel whose worker stopped beating: cancelled now (history kept), not run again."""
    now = utcnow()
    cancelled = list(session.scalars(
        _update_jobs().where(Job.status == "running", Job.cancel_requested.is_(True),
                             Job.heartbeat_at < now - timedelta(seconds=stale_after))
        .values(status="cancelled", finished_at=now, heartbeat_at=None, claim_token=None)
        .returning(Job.id)))
    _forget_checkpoints(session, cancelled)
    session.commit()
    return cancelled


def end_abandoned_graphs(session: Session, stale_after: float, max_attempts: int) -> list[uuid.UUID]:
    """Succeeded jobs' pending graphs whose drawer died and that are not to be drawn again (asked to cancel,
    or out of attempts): failed, saying why."""
    stale = and_(Job.status == "succeeded", Job.graph_status == "pending",
                 Job.heartbeat_at < utcnow() - timedelta(seconds=stale_after))
    ended = []
    for condition, reason in ((Job.cancel_requested.is_(True), CANCELLED_WHILE_DRAWING),
                              (Job.graph_attempts >= max_attempts,
                               f"the worker stopped while drawing it {max_attempts} times (attempt limit reached)")):
        ended += session.scalars(_update_jobs().where(stale, condition).values(
            graph_status="failed", graph_error=reason, claim_token=None, heartbeat_at=None).returning(Job.id))
    session.commit()
    return ended


CANCELLED_WHILE_DRAWING = "cancelled while it was being drawn"


def fail_exhausted_jobs(session: Session, stale_after: float, max_attempts: int) -> list[uuid.UUID]:
    """Running jobs whose worker died on their last allowed attempt: failed, so crash loops end."""
    now = utcnow()
    failed = list(session.scalars(
        _update_jobs().where(Job.status == "running", Job.attempts >= max_attempts,
                          Job.heartbeat_at < now - timedelta(seconds=stale_after))
        .values(status="failed", finished_at=now, claim_token=None,
                error=f"worker crashed {max_attempts} times (attempt limit reached)")
        .returning(Job.id)))
    _forget_checkpoints(session, failed)
    session.commit()
    return failed


# ---- helpers ----------------------------------------------------------------------------------------------

def _update_jobs():
    # Plain SQL UPDATEs: readers refresh from the database (populate_existing) instead.
    return update(Job).execution_options(synchronize_session=False)


# On PostgreSQL, in the WHERE clause of a write that need not wait for the disk (see below): true, and from there
# its transaction commits without the WAL fsync; a row is written only where it ran.
NO_FSYNC = literal_column("set_config('synchronous_commit', 'off', true) = 'off'")


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _one_statement_without_waiting_for_the_disk(session: Session, statement, parameters=None) -> tuple[list, int]:
    """Runs `statement` (an UPDATE of jobs; on PostgreSQL with NO_FSYNC in its WHERE clause) as a transaction of
    its own and commits it; returns the rows it returned (RETURNING) and how many it changed.

    On PostgreSQL its commit returns before its WAL reaches the disk (it is written within ~0.2 s, and at once
    by any later durable commit): for writes whose loss in a database crash is harmless, on a job's path (a
    claim: ~2-10 ms of fsync on this machine's PostgreSQL). A lost claim leaves the job queued: the run's next
    write finds it not its own and stops (Superseded), and the sweeper sends the job again; a lost heartbeat is
    an older heartbeat. Never for history or results (a lost batch would be a gap).

    And in one round trip: the statement runs on an autocommit connection, so the driver sends no BEGIN and
    no COMMIT, and it sets synchronous_commit for its own (implicit) transaction itself (NO_FSYNC): a claim
    used to be four round trips (BEGIN, SET LOCAL, UPDATE, COMMIT), each a wait for a PostgreSQL backend to be
    scheduled on a busy machine."""
    options = {}
    if _is_postgresql(session):
        if session.in_transaction():
            session.commit()  # (the caller's earlier work, if any: the autocommit connection is a new transaction)
        options = {"isolation_level": "AUTOCOMMIT"}
    result = session.connection(execution_options=options).execute(statement, parameters)
    rows = result.all() if result.returns_rows else []
    count = result.rowcount
    session.commit()  # (on PostgreSQL nothing to send: the statement committed itself)
    return rows, count


def _owned(job_id, token: str):
    return _update_jobs().where(Job.id == _as_uuid(job_id), Job.claim_token == token, Job.status == "running")


def _end(session: Session, job_id, token: str, **values) -> None:
    result = session.execute(_owned(job_id, token).values(**{"finished_at": utcnow(), "heartbeat_at": None, **values}))
    if result.rowcount != 1:
        session.rollback()
        raise Superseded(f"job {job_id} is no longer owned by this run")
    _forget_checkpoints(session, [job_id])


def _forget_checkpoints(session: Session, job_ids) -> None:
    """A final job never resumes: its checkpoint goes in the transaction that ends it. (A plain SQL DELETE: the
    ORM's default first evaluated its condition against every object in the session, ~1 ms of a job's CPU.)"""
    if job_ids:
        session.execute(delete(Checkpoint).where(Checkpoint.job_id.in_([_as_uuid(j) for j in job_ids]))
                        .execution_options(synchronize_session=False))


def _insert_points(session: Session, job_id, points: Iterable[Point]) -> None:
    """Duplicates (a re-run, a redelivery) are dropped per (job, step): the first write wins."""
    history.write(session, _as_uuid(job_id), points)


def _clamp_step(step: int) -> int:
    """Steps are 32-bit; a bound beyond that range selects the same rows and must not overflow the driver."""
    return max(-STEP_LIMIT, min(int(step), STEP_LIMIT))


def _finite(x: Optional[float]) -> Optional[float]:
    return float(x) if x is not None and math.isfinite(x) else None


def _json_safe(metrics: dict) -> dict:
    return {k: (_finite(v) if isinstance(v, float) else v) for k, v in metrics.items()}


def _as_uuid(job_id) -> uuid.UUID:
    return job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))


def _encode_cursor(job: Job, *sort_position) -> str:
    raw = json.dumps([job.created_at.isoformat(), str(job.id), *sort_position])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> list:
    """[created_at, id] or, for a sorted list, [created_at, id, sort key, descending, the key's value]."""
    try:
        created_at, job_id, *sort_position = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if sort_position:
            sort, descending, value = sort_position  # (the value is checked by _sort_value)
        # Compared in UTC, as stored: a date that leaves the calendar in UTC fails here, not in the query.
        return [datetime.fromisoformat(created_at).astimezone(timezone.utc), uuid.UUID(str(job_id)), *sort_position]
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"malformed cursor {cursor!r}") from e
