"""Graph pictures: seed-style draw_dot, escaping, bounded size, clear errors, each picture
drawn by both renderers: Graphviz compiled to WebAssembly (always, with the system's `dot`
hidden) and the system's `dot` (where it is installed)."""
import html
import os
import re
import shutil
from collections import Counter

import graphviz
import pytest

from core import MLP, Value, graph
from core.data import seed_example
from core.graph import RenderFailed, draw_dot, draw_network, trace, training_graph

LIMIT_BYTES = 1_500_000
NO_DOT = "the system's Graphviz `dot` is not installed (apt-get install graphviz); the WebAssembly renderer is tested"


def path_without_dot():
    return os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and not os.path.exists(os.path.join(d, "dot")))


@pytest.fixture(params=["wasm", "dot"])
def render_svg(request, monkeypatch):
    """core.graph.render_svg as a job calls it (renderer 'auto'), with one renderer available."""
    if request.param == "wasm":
        monkeypatch.setenv("PATH", path_without_dot())
        assert shutil.which("dot") is None

        def no_dot(dot):
            raise AssertionError("the system's dot was used although it is hidden")
        monkeypatch.setattr(graph, "_render_with_dot", no_dot)
    elif shutil.which("dot") is None:
        pytest.skip(NO_DOT)
    else:
        monkeypatch.setattr(graph, "_render_with_wasm", lambda source: pytest.fail("wasm used although dot is here"))
    return graph.render_svg


def test_draw_dot_draws_a_record_per_value_and_a_node_per_op(render_svg):
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = a * b
    c.label = "c"
    c.backward()
    dot = draw_dot(c)
    assert isinstance(dot, graphviz.Digraph) and dot.graph_attr["rankdir"] == "LR"
    svg = render_svg(dot)
    assert svg.lstrip().startswith("<?xml") or "<svg" in svg[:500]
    texts = svg_texts(svg)
    for text in ("a", "data 2.0000", "grad -3.0000", "data -6.0000", "grad 1.0000", "*"):
        assert text in texts
    nodes, edges = trace(c)
    assert len(nodes) == 3 and len(edges) == 2


def test_labels_cannot_break_the_record_or_inject_markup(render_svg):
    hostile = 'x{a|b}<c> "q" \\ <script>alert(1)</script>\n'
    v = Value(1.0, label=hostile)
    out = v.tanh()
    out.backward()
    svg = render_svg(draw_dot(out))
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert any('x{a|b}<c> "q" \\ <script>' in t for t in svg_texts(svg))  # one field, drawn literally


def test_the_seed_examples_loss_graph_is_drawn_whole(render_svg):
    xs, ys = seed_example()
    model = MLP(3, [4, 4, 1], seed=0)
    dot = training_graph(model, "sse", xs, ys)
    svg = render_svg(dot)
    assert "loss graph of the whole batch (4 samples)" in svg
    assert svg.count("class=\"node\"") > 700 and len(svg) < LIMIT_BYTES


def test_a_big_batch_is_drawn_as_one_sample(render_svg):
    xs, ys = generate_moons()
    svg = render_svg(training_graph(MLP(2, [8, 8, 1], seed=0), "hinge", xs, ys))
    assert "loss graph of one sample (sample 0 of 100;" in svg_texts(svg)[0] and len(svg) < LIMIT_BYTES


def test_a_big_network_is_drawn_per_neuron_or_per_layer(render_svg):
    xs, ys = generate_moons()
    svg = render_svg(training_graph(MLP(2, [16, 16, 1], seed=0), "hinge", xs, ys))  # the moons demo
    assert "one node per neuron" in svg and len(svg) < LIMIT_BYTES
    svg = render_svg(training_graph(MLP(2, [64, 64, 1], seed=0), "hinge", xs, ys))
    assert "one node per layer" in svg and len(svg) < 100_000
    assert "one node per neuron" in render_svg(draw_network(MLP(2, [3, 1], seed=0)))


def test_any_huge_graph_is_cut_to_the_nodes_nearest_the_output_and_says_so(render_svg):
    x = Value(0.5)
    for _ in range(20_000):
        x = x * 1.0001 + 0.1
    dot = draw_dot(x, max_values=200)
    assert dot.source.count("shape=record") == 200
    svg = render_svg(dot)
    assert f"showing the 200 values nearest the output, of {len(trace(x)[0])}" in svg and len(svg) < LIMIT_BYTES


def test_a_missing_dot_program_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RenderFailed, match="Graphviz's `dot` program is not on PATH"):
        graph.render_svg(draw_dot(Value(1.0)), renderer="dot")
    assert "data 1.0000" in svg_texts(graph.render_svg(draw_dot(Value(1.0))))  # auto: WebAssembly


@pytest.mark.parametrize("renderer", ["wasm", "dot"])
def test_a_renderer_failure_says_what_graphviz_said(renderer):
    if renderer == "dot" and shutil.which("dot") is None:
        pytest.skip(NO_DOT)
    said = {"wasm": "Graphviz \\(WebAssembly\\) could not draw the graph: Failed to parse DOT source",
            "dot": "Graphviz's `dot` failed: .*syntax error in line 1"}[renderer]
    with pytest.raises(RenderFailed, match=said):
        graph.render_svg(graphviz.Source("digraph { a -> }"), renderer=renderer)
    assert "<svg" in graph.render_svg(draw_dot(Value(1.0)), renderer=renderer)  # and renders on afterwards


def test_an_unknown_renderer_is_refused():
    with pytest.raises(ValueError, match="unknown renderer 'png'"):
        graph.render_svg(draw_dot(Value(1.0)), renderer="png")


def test_the_webassembly_graphviz_is_compiled_once_per_process(monkeypatch):
    import wasmtime
    graph.wasm_renderer.cache_clear()
    compiled = []
    from_file = wasmtime.Module.from_file
    monkeypatch.setattr(wasmtime.Module, "from_file", lambda *a: compiled.append(1) or from_file(*a))
    for _ in range(3):
        graph.render_svg(draw_dot(Value(1.0)), renderer="wasm")
    assert compiled == [1]


@pytest.mark.skipif(shutil.which("dot") is None, reason=NO_DOT)
def test_both_renderers_draw_the_same_picture():
    xs, ys = seed_example()
    dot = training_graph(MLP(3, [4, 4, 1], seed=0), "sse", xs, ys)
    system, wasm = graph.render_svg(dot, renderer="dot"), graph.render_svg(dot, renderer="wasm")
    assert svg_structure(system) == svg_structure(wasm)


def svg_structure(svg):
    """What the picture shows: its elements by class, each node's and edge's title, every text."""
    return (Counter(re.findall(r'class="(\w+)"', svg)),
            sorted(t for t in re.findall(r"<title>([^<]*)</title>", svg) if t != "%3"),  # old dot names the graph
            sorted(svg_texts(svg)))


def svg_texts(svg):
    return [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]


def generate_moons():
    from core.data import moons
    xs, ys = moons(100, 0.1, seed=0)
    return xs, [1.0 if y else -1.0 for y in ys]


def test_the_network_view_shows_the_gradients_training_left():
    model = MLP(2, [20, 20, 1], seed=0)
    for p in model.parameters():
        p.grad = 0.25  # what training leaves behind (its final evaluation)
    dot = training_graph(model, "hinge", [[0.5, -0.5]] * 10, [1.0] * 10)
    assert "one node per neuron" in dot.source
    assert dot.source.count("grad 0.2500") == 41  # every neuron's bias, not one sample's recomputation
