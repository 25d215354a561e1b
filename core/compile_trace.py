"""From a model and a loss to a tape: trace one sample's Value graph on placeholder
inputs and targets, recognise each neuron's chain of multiply-adds (a layer of them
becomes one matrix product), and group every other node by depth and op, so that
each step of the tape computes a group of independent nodes."""
from collections import Counter
from dataclasses import dataclass

from core.compile_steps import AffineStep, ElementwiseStep, Index, PickStep, kernels_for
from core.engine import Value, topological_order
from core.losses import LOSSES

PICK = "pick"
CLASS_INDEX_LOSSES = frozenset({"softmax_ce"})  # their target is an index into the outputs


class CannotCompile(Exception):
    """The model or loss uses something the compiled engine does not support; str() says what."""


# -- tracing ---------------------------------------------------------------------

class ClassIndex:
    """Stands in for a sample's class index while tracing."""


class TracedLogits(list):
    """The model's outputs; indexing them with the ClassIndex records a pick node."""

    def __getitem__(self, key):
        if isinstance(key, ClassIndex):
            return Value(super().__getitem__(0).data, tuple(self), PICK, "", (0.0,) * len(self))
        return super().__getitem__(key)


@dataclass
class Trace:
    inputs: list      # placeholder leaves, one per input
    targets: list     # placeholder leaves, one per target number (none for class-index losses)
    outputs: list     # the model's output nodes
    term: Value       # the loss of the one sample
    nodes: list       # every node, children before parents
    n_classes: int | None
    single_output: bool  # the model returns a Value, not a list


def trace_sample(model, loss_name, n_inputs):
    if loss_name not in LOSSES:
        raise CannotCompile(f"unknown loss {loss_name!r}")
    sample_term, _ = LOSSES[loss_name]
    inputs = [Value(0.0, label=f"x{i}") for i in range(n_inputs)]
    try:
        output = model(inputs)
        outputs = output if isinstance(output, list) else [output]
        if loss_name in CLASS_INDEX_LOSSES:
            targets, n_classes = [], len(outputs)
            term = sample_term(TracedLogits(output) if isinstance(output, list) else output, ClassIndex())
        else:
            targets, n_classes = [Value(0.0, label=f"y{i}") for i in range(len(outputs))], None
            term = sample_term(output, targets if isinstance(output, list) else targets[0])
    except Exception as error:  # whatever the interpreted engine would do with it, we can't trace it
        raise CannotCompile(f"tracing {loss_name} on the model failed: {type(error).__name__}: {error}") from error
    if not isinstance(term, Value) or not all(isinstance(o, Value) for o in outputs):
        raise CannotCompile(f"the model and loss {loss_name} do not produce Values")
    return Trace(inputs, targets, outputs, term, nodes_of([term, *outputs]), n_classes,
                 single_output=not isinstance(output, list))


def nodes_of(roots):
    """Every node reachable from the roots, children before parents: one walk
    from a stand-in parent of all the roots (one walk per root would revisit the
    loss's whole graph for each output)."""
    return topological_order(Value(0.0, tuple(roots)))[:-1]


# -- recognising neurons -------------------------------------------------------------

@dataclass
class Neuron:
    bias: Value
    weights: list
    inputs: list
    inner: list   # the chain's nodes other than its top: never materialised


def find_neurons(trace, is_param):
    """{id(top): Neuron} for every maximal chain b + w0*x0 + w1*x1 + ... whose
    parameters are leaves and whose inner nodes are used nowhere else."""
    uses = Counter(id(child) for node in trace.nodes for child in node._prev)
    uses.update(id(root) for root in [trace.term, *trace.outputs])
    neurons, inner = {}, set()
    for node in reversed(trace.nodes):  # parents first: the top of a chain comes before its links
        if node._op == "+" and id(node) not in inner:
            neuron = neuron_chain(node, uses, is_param)
            if neuron is not None:
                neurons[id(node)] = neuron
                inner.update(id(n) for n in neuron.inner)
    return neurons


def neuron_chain(top, uses, is_param):
    weights, inputs, inner = [], [], []
    node = top
    while True:
        left, right = node._prev
        product = weighted_input(right, uses, is_param)
        if product is None:
            return None
        weights.append(product[0])
        inputs.append(product[1])
        inner.append(right)
        if is_param(left):
            break
        if left._op != "+" or uses[id(left)] != 1:
            return None
        inner.append(left)
        node = left
    return Neuron(left, weights[::-1], inputs[::-1], inner)


def weighted_input(node, uses, is_param):
    """(w, x) when node is w*x (or x*w) with w a parameter, x not, used only once."""
    if node._op != "*" or uses[id(node)] != 1:
        return None
    a, b = node._prev
    if is_param(a) and not is_param(b):
        return a, b
    if is_param(b) and not is_param(a):
        return b, a
    return None


# -- planning the tape -----------------------------------------------------------------

@dataclass
class Program:
    n_rows: int
    input_rows: Index
    target_rows: Index | None
    constant_rows: Index | None
    constant_values: list
    param_rows: Index | None      # parameters some op reads as a row (not through a neuron)
    param_row_params: Index | None
    steps: list
    term_row: int
    output_rows: Index
    n_inputs: int
    n_outputs: int
    single_output: bool
    n_classes: int | None


def plan(trace, parameters):
    param_position = {id(p): i for i, p in enumerate(parameters)}

    def is_param(node):
        return id(node) in param_position and not node._prev

    neurons = find_neurons(trace, is_param)
    absorbed = {id(n) for neuron in neurons.values() for n in neuron.inner}
    placeholders = {id(v) for v in trace.inputs + trace.targets}
    ops = [n for n in trace.nodes if n._prev and id(n) not in absorbed]
    for node in ops:
        if id(node) not in neurons and node._op != PICK and kernels_for(node._op) is None:
            raise CannotCompile(f"op {node._op!r} is not supported by the compiled engine")

    def operands(node):
        return neurons[id(node)].inputs if id(node) in neurons else list(node._prev)

    leaves = {id(c): c for node in ops for c in operands(node) if not c._prev and id(c) not in placeholders}
    leaves.update((id(o), o) for o in [trace.term, *trace.outputs] if not o._prev and id(o) not in placeholders)
    constants = [leaf for leaf in leaves.values() if not is_param(leaf)]
    param_leaves = [leaf for leaf in leaves.values() if is_param(leaf)]

    rows = {}
    for node in trace.inputs + trace.targets + constants + param_leaves:
        rows[id(node)] = len(rows)
    groups = group_by_depth_and_op(ops, operands, neurons)
    for group in groups:
        for node in group:
            rows[id(node)] = len(rows)

    needs_grad = {id(p): True for p in param_leaves}
    steps = []
    for group in groups:
        for node in group:
            needs_grad[id(node)] = id(node) in neurons or any(needs_grad.get(id(c), False) for c in operands(node))
        steps.append(make_step(group, rows, operands, neurons, needs_grad, param_position))

    def index(nodes):
        return Index([rows[id(n)] for n in nodes]) if nodes else None

    return Program(
        n_rows=len(rows),
        input_rows=index(trace.inputs),
        target_rows=index(trace.targets),
        constant_rows=index(constants),
        constant_values=[float(c.data) for c in constants],
        param_rows=index(param_leaves),
        param_row_params=Index([param_position[id(p)] for p in param_leaves]) if param_leaves else None,
        steps=steps,
        term_row=rows[id(trace.term)],
        output_rows=index(trace.outputs),
        n_inputs=len(trace.inputs),
        n_outputs=len(trace.outputs),
        single_output=trace.single_output,
        n_classes=trace.n_classes,
    )


def group_by_depth_and_op(ops, operands, neurons):
    """Groups of nodes that can run as one step: same depth (so independent of each
    other), same op and arity; neurons also need the very same inputs. In run order."""
    depth, groups = {}, {}
    for node in ops:  # children before parents, so operand depths are known
        depth[id(node)] = 1 + max(depth.get(id(c), 0) for c in operands(node))
        if id(node) in neurons:
            key = (depth[id(node)], "affine", tuple(id(x) for x in operands(node)))
        else:
            key = (depth[id(node)], node._op, len(node._prev))
        groups.setdefault(key, []).append(node)
    return [groups[key] for key in sorted(groups, key=lambda k: k[0])]  # stable: first-seen order per depth


def make_step(group, rows, operands, neurons, needs_grad, param_position):
    out = Index([rows[id(n)] for n in group])
    first = group[0]
    if id(first) in neurons:
        inputs = neurons[id(first)].inputs
        weights = [param_position[id(w)] for n in group for w in neurons[id(n)].weights]
        biases = [param_position[id(neurons[id(n)].bias)] for n in group]
        return AffineStep(out, Index([rows[id(x)] for x in inputs]), Index(weights), Index(biases),
                          (len(group), len(inputs)), any(needs_grad.get(id(x), False) for x in inputs))
    if first._op == PICK:
        return PickStep(out, [[rows[id(c)] for c in n._prev] for n in group])
    arity = len(first._prev)
    columns = [Index([rows[id(n._prev[j])] for n in group]) for j in range(arity)]
    wanted = [j for j in range(arity) if any(needs_grad.get(id(n._prev[j]), False) for n in group)]
    return ElementwiseStep(first._op, out, columns, wanted)
