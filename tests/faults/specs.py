"""Job specs for the fault tests, sized so a job runs long enough to be hit mid-training.

The interpreted engine on the seed's data keeps a step cheap and its cost steady; the step
count is calibrated once per process so a job trains for about TARGET_SECONDS here."""
import copy
import math
import time
from functools import lru_cache

from core.spec import JobSpec

TARGET_SECONDS = 3.0
CALIBRATION_STEPS = 300
MAX_SERVED_POINTS = 5000  # well under the loss endpoint's max_points, so the whole curve is served

BASE = {
    "model": {"layers": [8, 8, 1]},
    "data": {"kind": "seed"},
    "loss": "sse",
    "optimizer": {"name": "sgd", "lr": 0.05},
    "engine": "interpreted",
    "record": {"graph_svg": False},
}

# A huge learning rate: the loss overflows within a few dozen steps.
DIVERGING = {
    "model": {"layers": [8, 1], "activations": ["relu", "linear"]},
    "data": {"kind": "seed"},
    "loss": "sse",
    "optimizer": {"name": "sgd", "lr": 50.0},
    "steps": 500,
    "engine": "interpreted",
    "record": {"graph_svg": False},
}


@lru_cache
def calibrated_steps():
    """Steps for TARGET_SECONDS at the fastest of three short runs: a job that runs faster than it was
    calibrated (the test process measured while the other pytest-xdist worker was busy) ends before its
    fault lands; one that runs slower only takes longer."""
    from core.train import run_spec
    spec = JobSpec.model_validate(dict(BASE, steps=CALIBRATION_STEPS // 3))
    per_step = min(_seconds(run_spec, spec) for _ in range(3)) / (CALIBRATION_STEPS // 3)
    return max(500, min(50_000, round(TARGET_SECONDS / per_step)))


def _seconds(function, *args):
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def long_spec(seed=0, fraction=1.0, **changes):
    """About `fraction` of TARGET_SECONDS of training, with its own seed and any top-level changes."""
    steps = max(100, round(calibrated_steps() * fraction))
    spec = copy.deepcopy(BASE)
    spec.update(seed=seed, steps=steps, record={"graph_svg": False,
                                                "loss_every": math.ceil(steps / MAX_SERVED_POINTS)})
    spec.update(changes)
    return spec
