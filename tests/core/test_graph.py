"""Graph pictures: seed-style draw_dot, escaping, bounded size, clear errors."""
import html
import re

import graphviz
import pytest

from core import MLP, Value
from core.data import seed_example
from core.graph import GraphvizMissing, draw_dot, draw_network, render_svg, trace, training_graph

LIMIT_BYTES = 1_500_000


def test_draw_dot_draws_a_record_per_value_and_a_node_per_op():
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


def test_labels_cannot_break_the_record_or_inject_markup():
    hostile = 'x{a|b}<c> "q" \\ <script>alert(1)</script>\n'
    v = Value(1.0, label=hostile)
    out = v.tanh()
    out.backward()
    svg = render_svg(draw_dot(out))
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert any('x{a|b}<c> "q" \\ <script>' in t for t in svg_texts(svg))  # one field, drawn literally


def test_the_seed_examples_loss_graph_is_drawn_whole():
    xs, ys = seed_example()
    model = MLP(3, [4, 4, 1], seed=0)
    dot = training_graph(model, "sse", xs, ys)
    svg = render_svg(dot)
    assert "loss graph of the whole batch (4 samples)" in svg
    assert svg.count("class=\"node\"") > 700 and len(svg) < LIMIT_BYTES


def test_a_big_batch_is_drawn_as_one_sample():
    xs, ys = generate_moons()
    svg = render_svg(training_graph(MLP(2, [8, 8, 1], seed=0), "hinge", xs, ys))
    assert "loss graph of one sample (sample 0 of 100;" in svg_texts(svg)[0] and len(svg) < LIMIT_BYTES


def test_a_big_network_is_drawn_per_neuron_or_per_layer():
    xs, ys = generate_moons()
    svg = render_svg(training_graph(MLP(2, [16, 16, 1], seed=0), "hinge", xs, ys))  # the moons demo
    assert "one node per neuron" in svg and len(svg) < LIMIT_BYTES
    svg = render_svg(training_graph(MLP(2, [64, 64, 1], seed=0), "hinge", xs, ys))
    assert "one node per layer" in svg and len(svg) < 100_000
    assert "one node per neuron" in render_svg(draw_network(MLP(2, [3, 1], seed=0)))


def test_any_huge_graph_is_cut_to_the_nodes_nearest_the_output_and_says_so():
    x = Value(0.5)
    for _ in range(20_000):
        x = x * 1.0001 + 0.1
    dot = draw_dot(x, max_values=200)
    assert dot.source.count("shape=record") == 200
    svg = render_svg(dot)
    assert f"showing the 200 values nearest the output, of {len(trace(x)[0])}" in svg and len(svg) < LIMIT_BYTES


def test_a_missing_dot_program_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(GraphvizMissing, match="install Debian's graphviz package"):
        render_svg(draw_dot(Value(1.0)))


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
