"""Engines side by side: median milliseconds per training step (forward, backward,
SGD update) of the seed-style engine, our interpreted engine, the compiled engine
and PyTorch (float64, one thread), all from the same initial weights on the same
data, with a check that their loss curves agree. Each step runs as that engine's
training loop runs it: the compiled one on parameter arrays, as core.train does.

    .venv/bin/python benchmarks/engine.py [--quick] [--cases bf]

Cases: (a) MLP(2, [16, 16, 1]) on 100 points, (b) MLP(2, [64, 64, 1]) on 1,000
points, (c) and (d) the (a) net on mini-batches of 1 and of 10 points, (e) a deep net,
8 layers of 32, on 100 points, (f) a wide one, 2 layers of 256, on 10,000 points; tanh,
sum of squared errors, one batch per step. The last line is one JSON object.
NumPy's BLAS gets one thread too (OPENBLAS_NUM_THREADS=1 unless already set), so
every engine runs on one core."""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads: as one-threaded as torch below

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from core.compile import compile_loss  # noqa: E402
from core.data import moons  # noqa: E402
from core.nn import MLP  # noqa: E402
from core.optim import SGD  # noqa: E402
from core.param_array import ParamArray  # noqa: E402
from core.train import interpreted_loss_and_grads  # noqa: E402
from tests.reference import seed_engine  # noqa: E402

CURVE_RTOL = 1e-9
BLOCKS = 10  # turns each engine takes at its timed steps

# name -> (layers, points, lr, {engine: steps timed (after one untimed warm-up step)}, quick steps)
CASES = {
    "a": ([16, 16, 1], 100, 1e-3,
          {"seed": 3, "interpreted": 10, "compiled": 300, "pytorch": 300},
          {"seed": 1, "interpreted": 2, "compiled": 30, "pytorch": 30}),
    "b": ([64, 64, 1], 1000, 1e-4,
          {"seed": 0, "interpreted": 1, "compiled": 100, "pytorch": 100},
          {"seed": 0, "interpreted": 0, "compiled": 10, "pytorch": 10}),
    "c": ([16, 16, 1], 1, 1e-3,
          {"seed": 100, "interpreted": 300, "compiled": 3000, "pytorch": 3000},
          {"seed": 10, "interpreted": 30, "compiled": 300, "pytorch": 300}),
    "d": ([16, 16, 1], 10, 1e-3,
          {"seed": 30, "interpreted": 100, "compiled": 1000, "pytorch": 1000},
          {"seed": 3, "interpreted": 10, "compiled": 100, "pytorch": 100}),
    "e": ([32] * 8 + [1], 100, 1e-4,
          {"seed": 0, "interpreted": 2, "compiled": 100, "pytorch": 100},
          {"seed": 0, "interpreted": 0, "compiled": 10, "pytorch": 10}),
    "f": ([256, 256, 1], 10_000, 1e-6,
          {"seed": 0, "interpreted": 0, "compiled": 10, "pytorch": 10},
          {"seed": 0, "interpreted": 0, "compiled": 3, "pytorch": 3}),
}


def dataset(n):
    xs, labels = moons(max(n, 2), noise=0.1, seed=0)
    xs, labels = xs[:n], labels[:n]  # a mini-batch of one is the first point
    return xs, [1.0 if label else -1.0 for label in labels]


# -- one training step per engine, each as its own training loop would run it -----

def seed_steps(initial, xs, ys, lr):
    model = seed_engine.MLP(2, [len(layer["neurons"]) for layer in initial["layers"]])
    seed_engine.copy_weights(MLP.from_json(initial).parameters(), model.parameters())
    return lambda: seed_engine.seed_training_step(model, xs, ys, lr)


def interpreted_steps(initial, xs, ys, lr):
    model = MLP.from_json(initial)
    optimizer = SGD(model.parameters(), lr)

    def step():
        loss, _ = interpreted_loss_and_grads(model, "sse", 0.0, xs, ys)  # pauses the cycle collector itself
        optimizer.step(lr)
        return loss
    return step


def compiled_steps(initial, xs, ys, lr):
    """As core.train runs the compiled engine: parameters and gradients in arrays, not Values, and
    the (full) batch converted to arrays once (core/batches.py)."""
    model = MLP.from_json(initial)
    compiled = compile_loss(model, "sse", 0.0, 2)
    optimizer = SGD(model.parameters(), lr)
    params = ParamArray(model.parameters())
    arrays = compiled.batch_arrays(xs, ys)

    def step():
        loss, _ = compiled.array_loss_and_grads(xs, ys, params, arrays=arrays)
        optimizer.update(params.data, params.grad, lr)
        return loss
    return step


def pytorch_steps(initial, xs, ys, lr):
    layers = []
    for layer in initial["layers"]:
        linear = torch.nn.Linear(len(layer["neurons"][0]["w"]), len(layer["neurons"]), dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.tensor([n["w"] for n in layer["neurons"]], dtype=torch.float64))
            linear.bias.copy_(torch.tensor([n["b"] for n in layer["neurons"]], dtype=torch.float64))
        layers += [linear, torch.nn.Tanh()]
    model = torch.nn.Sequential(*layers)
    inputs = torch.tensor(xs, dtype=torch.float64)
    targets = torch.tensor(ys, dtype=torch.float64)[:, None]

    def step():
        loss = ((model(inputs) - targets) ** 2).sum()
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(p.grad, alpha=-lr)
        return loss.item()
    return step


ENGINES = {"seed": seed_steps, "interpreted": interpreted_steps, "compiled": compiled_steps,
           "pytorch": pytorch_steps}


def timed_runs(steps, initial, xs, ys, lr):
    """{engine: (median ms per step, loss curve)} over one warm-up step and steps[engine] timed ones.
    The engines take turns, BLOCKS blocks of steps each (consecutive steps within a block, as in
    training), so a change in the load of this shared machine falls on every engine alike."""
    run = {engine: ENGINES[engine](initial, xs, ys, lr) for engine in steps}
    curves = {engine: [step()] for engine, step in run.items()}
    times = {engine: [] for engine in steps}
    for block in range(BLOCKS):
        for engine, step in run.items():
            for _ in range(_block_length(steps[engine], block)):
                start = time.perf_counter()
                curves[engine].append(step())
                times[engine].append((time.perf_counter() - start) * 1e3)
    return {engine: (statistics.median(times[engine]), curves[engine]) for engine in steps}


def _block_length(steps, block):
    """How many of `steps` steps the given block runs: BLOCKS nearly equal parts."""
    return steps * (block + 1) // BLOCKS - steps * block // BLOCKS


def compile_cost(initial, xs, ys):
    """(ms to compile, peak MB allocated while compiling and running one step, the CompiledLoss);
    the time is taken without tracemalloc, which slows allocation down."""
    start = time.perf_counter()
    compile_loss(MLP.from_json(initial), "sse", 0.0, 2)
    compile_ms = (time.perf_counter() - start) * 1e3
    tracemalloc.start()
    compiled = compile_loss(MLP.from_json(initial), "sse", 0.0, 2)
    compiled.loss_and_grads(xs, ys)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return compile_ms, peak / 2**20, compiled


def check_curves(case, curves):
    """Every engine's curve equals the compiled one's over the steps both ran."""
    reference = curves["compiled"]
    scale = max(abs(v) for v in reference)
    for engine, curve in curves.items():
        if engine == "compiled":
            continue
        worst = max(abs(a - b) for a, b in zip(curve, reference)) / scale
        print(f"  ({case}) {engine:12s} loss curve vs compiled over {min(len(curve), len(reference))} steps: "
              f"max difference {worst:.1e} of the loss scale")
        if worst > CURVE_RTOL:
            raise SystemExit(f"case ({case}): the {engine} loss curve disagrees with the compiled one")


def run_case(case, quick):
    layers, n_points, lr, full_steps, quick_steps = CASES[case]
    steps = quick_steps if quick else full_steps
    xs, ys = dataset(n_points)
    initial = MLP(2, layers, seed=0).to_json()
    compile_ms, peak_mb, compiled = compile_cost(initial, xs, ys)
    print(f"({case}) MLP(2, {layers}) on {n_points} points: {compiled}; compiled in {compile_ms:.0f} ms, "
          f"peak {peak_mb:.1f} MB", flush=True)
    result, curves = {"case": case}, {}
    timed = timed_runs({engine: n for engine, n in steps.items() if n > 0}, initial, xs, ys, lr)
    for engine in ENGINES:
        result[f"{engine}_ms"], curve = timed.get(engine, (None, None))
        if curve is not None:
            curves[engine] = curve
            print(f"  ({case}) {engine:12s} {result[f'{engine}_ms']:10.3f} ms/step (median of {steps[engine]})",
                  flush=True)
    check_curves(case, curves)
    result["compiled_vs_pytorch"] = result["compiled_ms"] / result["pytorch_ms"]
    result["compile_ms"], result["compiled_peak_mb"] = compile_ms, peak_mb
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps each; skip the interpreted engine on (b)")
    parser.add_argument("--cases", default="".join(CASES), help="which cases to run, e.g. bf (default: all)")
    args = parser.parse_args()
    quick = args.quick
    torch.set_num_threads(1)
    results = [run_case(case, quick) for case in CASES if case in args.cases]
    print(f"{'case':6s}" + "".join(f"{name + ' ms':>16s}" for name in ENGINES) + f"{'compiled/torch':>16s}")
    for r in results:
        cells = "".join(f"{'-' if r[f'{name}_ms'] is None else format(r[f'{name}_ms'], '.3f'):>16s}" for name in ENGINES)
        print(f"{r['case']:6s}{cells}{r['compiled_vs_pytorch']:16.2f}")
    print(json.dumps({"quick": quick, "cases": results}))


if __name__ == "__main__":
    main()
