"""Job specs for the fault tests, sized so a job runs long enough to be hit mid-training."""
import copy

# Several seconds of training on a loaded 2-core machine; its loss stays finite.
LONG = {
    "model": {"layers": [16, 16, 1]},
    "data": {"kind": "moons", "n_samples": 100, "noise": 0.1},
    "loss": "mse",
    "optimizer": {"name": "sgd", "lr": 0.05},
    "steps": 3000,
    "record": {"graph_svg": False},
}

# Each step multiplies the error: the loss overflows to infinity within a few dozen steps.
DIVERGING = {
    "model": {"layers": [8, 1], "activations": ["relu", "linear"]},
    "data": {"kind": "seed"},
    "loss": "sse",
    "optimizer": {"name": "sgd", "lr": 50.0},
    "steps": 500,
    "record": {"graph_svg": False},
}


def long_spec(seed=0, **changes):
    """LONG with its own seed (so jobs are distinguishable) and any top-level changes."""
    spec = copy.deepcopy(LONG)
    spec.update(seed=seed, **changes)
    return spec
