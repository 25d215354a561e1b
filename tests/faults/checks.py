"""What "no lost and no doubled history" means, checked against a reference run of the same spec.

Training is deterministic, so the reference is simply `core.train.run_spec` in this process:
a job re-run after any fault must reproduce it exactly."""
import json
import re
from collections import Counter
from functools import lru_cache

from core.spec import JobSpec


@lru_cache
def _reference(spec_json):
    from core.train import TrainingDiverged, run_spec
    try:
        result = run_spec(JobSpec.model_validate_json(spec_json))
        return result.history, result.params, None
    except TrainingDiverged as e:
        return e.history, None, e


def reference_run(spec):
    """(history, params, divergence) of an uninterrupted in-process run; cached per spec."""
    return _reference(json.dumps(spec, sort_keys=True))


def recorded_curve(history):
    return [(record.step, record.loss) for record in history if record.recorded]


def served_curve(points):
    return [(point["step"], point["loss"]) for point in points]


def assert_one_complete_history(client, job_id, spec):
    """Succeeded, every recorded step exactly once, the same losses and parameters as the reference."""
    history, params, _ = reference_run(spec)
    job = client.job(job_id)
    assert job["status"] == "succeeded", job
    curve = served_curve(client.loss_points(job_id))
    expected = recorded_curve(history)
    assert curve == expected, describe_difference(curve, expected)
    assert job["metrics"]["final_loss"] == history[-1].loss
    assert client.params(job_id) == params
    return job


def describe_difference(curve, expected):
    """A readable account of how a served curve differs from the reference (they may be long)."""
    served, wanted = dict(curve), dict(expected)
    missing = sorted(set(wanted) - set(served))
    extra = sorted(set(served) - set(wanted))
    repeated = sorted(step for step, count in Counter(step for step, _ in curve).items() if count > 1)
    differing = [(step, served[step], wanted[step]) for step in sorted(set(served) & set(wanted))
                 if served[step] != wanted[step]]
    return (f"{len(curve)} points served, {len(expected)} expected; missing steps {missing[:10]} "
            f"({len(missing)}), extra {extra[:10]} ({len(extra)}), repeated {repeated[:10]}, "
            f"differing (step, served, reference) {differing[:5]} ({len(differing)})")


def assert_duplicate_free_prefix(points, spec):
    """A job stopped early keeps what it wrote: steps strictly increasing, each the reference's value.
    The reference runs only as many steps as were served (with a constant learning rate the first
    k steps do not depend on the total)."""
    curve = served_curve(points)
    steps = [step for step, _ in curve]
    assert steps, "no history was kept"
    assert steps == sorted(set(steps)), "steps must be strictly increasing (no duplicates)"
    history, _, _ = reference_run(dict(spec, steps=steps[-1] + 1, time_limit_seconds=None))
    expected = dict(recorded_curve(history))
    assert all(expected.get(step) == loss for step, loss in curve), "a point differs from the reference run"
    return curve


def resumed_from(cluster, job_id):
    """The steps the job's re-runs resumed from, as the workers logged them (none: no re-run resumed)."""
    logged = "".join(worker.log() for worker in cluster.workers)
    return [int(step) for step in re.findall(rf"job {job_id}: resuming from its checkpoint at step (\d+)", logged)]


def steps_recomputed(cluster, client, fault):
    """Steps computed twice because of the fault: for each job that was run again, the steps it had
    reported done at the fault minus the step its re-run resumed from (0 without a checkpoint). A
    lower bound by at most the progress flush interval (0.5 s) of steps."""
    total = 0
    for (job_id, _), before in zip(fault.jobs, fault.steps_before):
        if client.job(job_id)["attempts"] > 1:
            total += max(0, before - max(resumed_from(cluster, job_id), default=0))
    return total
