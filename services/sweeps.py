"""Advancing a sweep: Optuna's samplers and pruners through its ask-and-tell API, on state that
lives in our database.

Every advance rebuilds an in-memory Optuna study from the sweep's rows (trial params, the
sampler's and pruner's per-trial attributes, outcomes from the trial jobs, intermediate values
from their loss histories), then, in the same locked transaction (services/store/sweeps.py):

1. prunes: each running trial's loss points not yet seen are reported to the pruner one step at
   a time, as a training loop calling `trial.report` and `trial.should_prune` would; a trial the
   pruner stops has its job cancelled and is marked pruned. A trial that finished between two
   advances is replayed too, so its rung values count for the trials after it (it keeps its result);
2. asks: new trials up to `parallelism` queued or running and `trials` in all, each a queued job, as long
   as the owner stays within MAX_ACTIVE_JOBS_PER_OWNER (else the sweep waits for room).

The samplers are seeded from the sweep's seed and the number of trials asked so far, so the
same rows give the same new trials. Intermediate values are the step losses (negated when the
objective is maximised, so that "better" points the same way for the pruner as for the objective).

Called by the API when a sweep is made, by the worker as a trial reports and when it ends, and
by the sweeper on a timer, so that a dead worker cannot stall a sweep."""
import json
import logging
import warnings
from functools import cache

from pydantic import ValidationError

from core.sweep_spec import ChoiceParam, FloatParam, SweepSpec
from services import queue
from services.config import get_settings
from services.store import sweeps as sweep_store
from services.store.db import session_scope
from services.store.sweeps import Decision, NewTrial

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 2000


@cache
def _optuna():
    """Optuna, imported when a sweep first advances: ~0.2 CPU s that the API and every worker process
    paid at start-up, most of them never advancing a sweep."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def advance(sweep_id) -> sweep_store.Advanced:
    """Advances the sweep and sends its new trials to the broker. A send that fails leaves the job
    queued in the database, where the sweeper finds it."""
    with session_scope() as session:
        done = sweep_store.advance(session, sweep_id, decide, max_active=get_settings().MAX_ACTIVE_JOBS_PER_OWNER)
    for job_id in done.queued:
        try:
            queue.enqueue(job_id)
        except Exception:
            log.warning("could not enqueue trial job %s now; it stays queued for the sweeper", job_id, exc_info=True)
    return done


def decide(snapshot: sweep_store.SweepSnapshot) -> Decision:
    sweep = SweepSpec.model_validate(snapshot.sweep_spec)
    space = Space(sweep)
    decision = Decision()
    if sweep.early_stopping is not None:
        _prune_running_trials(sweep, space, snapshot, decision)
    _ask_new_trials(sweep, space, snapshot, decision)
    return decision


class Space:
    """The search space as Optuna distributions. A choice is a categorical over the indices of its
    values (Optuna's categoricals hold only numbers, strings and None; ours may hold lists)."""

    def __init__(self, sweep: SweepSpec):
        self.params = sweep.space
        self.distributions = {path: _distribution(p) for path, p in sweep.space.items()}

    def to_optuna(self, params: dict) -> dict:
        return {path: _index_of(p.values, params[path]) if isinstance(p, ChoiceParam) else params[path]
                for path, p in self.params.items()}

    def from_optuna(self, params: dict) -> dict:
        return {path: p.values[params[path]] if isinstance(p, ChoiceParam) else params[path]
                for path, p in self.params.items()}

    def grid(self) -> dict:
        return {path: list(range(len(p.values))) if isinstance(p, ChoiceParam) else p.grid()
                for path, p in self.params.items()}


def _distribution(param):
    distributions = _optuna().distributions
    if isinstance(param, FloatParam):
        return distributions.FloatDistribution(param.low, param.high, log=param.log)
    if isinstance(param, ChoiceParam):
        return distributions.CategoricalDistribution(list(range(len(param.values))))
    low, high = param.corners()
    return distributions.IntDistribution(low, high, log=param.log, step=param.step)


def _index_of(values, value) -> int:
    as_json = json.dumps(value, sort_keys=True)
    return next(i for i, v in enumerate(values) if json.dumps(v, sort_keys=True) == as_json)


# ---- the study, rebuilt ------------------------------------------------------------------------------------

def _study(sweep: SweepSpec, sampler=None):
    optuna = _optuna()
    return optuna.create_study(direction=sweep.direction, sampler=sampler or optuna.samplers.RandomSampler(0),
                               pruner=_pruner(sweep))


def _pruner(sweep: SweepSpec):
    optuna, rule = _optuna(), sweep.early_stopping
    if rule is None:
        return optuna.pruners.NopPruner()
    steps = sweep.spec.steps
    if rule.rule == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=rule.startup_trials,
                                           n_warmup_steps=rule.min_steps or steps // 10)
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=rule.min_steps or max(1, steps // rule.reduction_factor ** 3),
        reduction_factor=rule.reduction_factor)


def _sampler(sweep: SweepSpec, space: Space, asked_so_far: int):
    optuna = _optuna()
    seed = (sweep.seed * 1_000_003 + asked_so_far) % 2**32  # a fresh, reproducible stream per advance
    if sweep.method == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=sweep.seed)  # its order depends on the seed only
    if sweep.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, constant_liar=sweep.parallelism > 1)


def _sign(sweep: SweepSpec) -> float:
    return 1.0 if sweep.direction == "minimize" else -1.0


def _add_trial(study, sweep, space, snapshot, trial, state=None, intermediate=None):
    """Adds one of our trials to the study, in the state its job says (or `state`)."""
    value = None
    if state is None:
        state, value, intermediate = _outcome(sweep, snapshot, trial)
    create_trial = _optuna().trial.create_trial
    study.add_trial(create_trial(state=state, value=value, params=space.to_optuna(trial.params),
                                 distributions=space.distributions, system_attrs=trial.system_attrs,
                                 intermediate_values=intermediate or {}))
    return study.get_trials(deepcopy=False)[-1]


def _outcome(sweep, snapshot, trial):
    """(state, objective value, intermediate values) of a trial as Optuna needs them."""
    TrialState = _optuna().trial.TrialState  # noqa: N806 (Optuna's name)
    if trial.pruned:  # the sampler ranks pruned trials by their last reported step and value
        last = trial.checked_step
        return TrialState.PRUNED, None, {} if last is None else _intermediate(sweep, snapshot, trial, last, last)
    if trial.status in ("queued", "running"):
        return TrialState.RUNNING, None, {}
    value = sweep.objective_value(trial.metrics) if trial.status == "succeeded" else None
    if value is None:
        return TrialState.FAIL, None, {}
    median = sweep.early_stopping is not None and sweep.early_stopping.rule == "median"
    return TrialState.COMPLETE, value, _intermediate(sweep, snapshot, trial) if median else {}


def _intermediate(sweep, snapshot, trial, start=None, end=None) -> dict:
    """The trial's loss points from `start` to `end` (inclusive; None: unbounded) as intermediate values."""
    if trial.job_id is None:
        return {}
    sign = _sign(sweep)
    return {p.step: sign * p.loss for p in snapshot.history(trial.job_id, start=start, end=end)}


def _checked_points(sweep, snapshot, trial) -> dict:
    """The intermediate values the pruner has already seen."""
    return {} if trial.checked_step is None else _intermediate(sweep, snapshot, trial, end=trial.checked_step)


# ---- pruning ----------------------------------------------------------------------------------------------

def _prune_running_trials(sweep, space, snapshot, decision) -> None:
    to_judge = [t for t in snapshot.trials if not t.pruned and t.status in ("running", "succeeded")
                and t.job_id is not None and _has_unseen_points(t)]
    if not to_judge:
        return
    judged = {t.number for t in to_judge}
    study = _study(sweep)
    trials = {}
    for trial in snapshot.trials:
        if trial.number in judged:
            trials[trial.number] = _add_trial(study, sweep, space, snapshot, trial,
                                              state=_optuna().trial.TrialState.RUNNING,
                                              intermediate=_checked_points(sweep, snapshot, trial))
        else:
            _add_trial(study, sweep, space, snapshot, trial)
    for trial in to_judge:
        frozen = trials[trial.number]
        first_unseen = 0 if trial.checked_step is None else trial.checked_step + 1
        new_points = _intermediate(sweep, snapshot, trial, start=first_unseen)
        if not new_points:
            continue
        stopped_at = _replay(study, frozen, new_points)
        last_step = stopped_at if stopped_at is not None else max(new_points)
        attrs = study.get_trials(deepcopy=False)[frozen.number].system_attrs
        decision.checked[trial.number] = (_json_attrs(attrs), last_step)
        if stopped_at is not None and trial.status == "running":
            log.info("pruning trial %s (job %s) at step %s", trial.number, trial.job_id, stopped_at)
            decision.prune.append(trial.number)


def _has_unseen_points(trial) -> bool:
    """Steps run past the last one the pruner saw (the last step run is always recorded)."""
    return bool(trial.steps_done) and (trial.checked_step is None or trial.checked_step < trial.steps_done - 1)


def _replay(study, frozen, points: dict):
    """Reports each new point to the pruner in step order; the step at which it says stop, or None."""
    trial = _optuna().trial.Trial(study, frozen._trial_id)
    for step in sorted(points):
        trial.report(points[step], step)
        if trial.should_prune():
            return step
    return None


def _json_attrs(attrs: dict) -> dict:
    return json.loads(json.dumps(attrs))


# ---- asking -----------------------------------------------------------------------------------------------

def _ask_new_trials(sweep, space, snapshot, decision) -> None:
    pruned_now = set(decision.prune)
    active = sum(1 for t in snapshot.trials
                 if t.status in ("queued", "running") and not t.pruned and t.number not in pruned_now)
    wanted = min(sweep.parallelism - active, snapshot.trials_wanted - snapshot.trials_created)
    if wanted <= 0:
        return
    study = _study(sweep, _sampler(sweep, space, snapshot.trials_created))
    for trial in snapshot.trials:
        if trial.number in pruned_now:
            trial.pruned, trial.checked_step = True, decision.checked[trial.number][1]
        if trial.number in decision.checked:
            trial.system_attrs = decision.checked[trial.number][0]
        _add_trial(study, sweep, space, snapshot, trial)
    for _ in range(wanted):
        asked = study.ask(space.distributions)
        params = space.from_optuna(asked.params)
        attrs = _json_attrs(study.get_trials(deepcopy=False)[asked.number].system_attrs)
        try:
            spec = sweep.trial_spec(params).model_dump(mode="json")
        except ValidationError as e:
            reason = f"these parameters make an invalid spec: {e}"[:MAX_ERROR_CHARS]
            decision.new_trials.append(NewTrial(params=params, system_attrs=attrs, spec=None, error=reason))
            study.tell(asked, state=_optuna().trial.TrialState.FAIL)
            continue
        decision.new_trials.append(NewTrial(params=params, system_attrs=attrs, spec=spec))


def advance_for_trial(sweep_id, job_id) -> bool:
    """For the worker, as a trial reports: advances its sweep; True if this trial was just pruned.
    A failure is logged, never raised: training goes on, and the next report or the sweeper retries."""
    try:
        return any(str(pruned) == str(job_id) for pruned in advance(sweep_id).pruned)
    except Exception:
        log.warning("could not advance sweep %s; the sweeper will", sweep_id, exc_info=True)
        return False
