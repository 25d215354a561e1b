"""The steps of a compiled tape and the op kernels they run.

Every value of the traced one-sample graph owns a row of a (rows x batch)
array, one column per sample. A step computes a group of independent rows for
the whole batch at once and, on the way back, adds the gradients of its rows
into the rows (and parameters) it read. The kernels use the formulas of
core/engine.py, applied to arrays."""
import numpy as np


class Unreplayable(Exception):
    """The batch reached a value where the interpreted engine raises (an overflow,
    the log of a non-positive number, ...): that batch has to be run interpreted."""


def _require(condition, reason):
    if not condition:
        raise Unreplayable(reason)


# -- kernels: forward(*inputs) -> output; backward(grad, output, *inputs) -> a gradient per input --

def add(a, b):
    return a + b


def add_backward(g, out, a, b):
    return g, g


def mul(a, b):
    return a * b


def mul_backward(g, out, a, b):
    return b * g, a * g


def tanh(a):
    return np.tanh(a)


def tanh_backward(g, out, a):
    local = out * out  # (1.0 - out * out) * g, in one array instead of three
    np.subtract(1.0, local, out=local)
    local *= g
    return (local,)


def exp(a):
    out = np.exp(a)
    _require(np.isfinite(out).all(), "exp overflowed")
    return out


def exp_backward(g, out, a):
    return (out * g,)


def log(a):
    _require((a > 0).all(), "log of a non-positive number")
    return np.log(a)


def log_backward(g, out, a):
    return ((1.0 / a) * g,)


def relu(a):
    return np.where(a <= 0, 0.0, a)  # as the engine: a NaN passes on, it must not turn into 0


def relu_backward(g, out, a):
    return (~(a <= 0) * g,)


def sigmoid(a):
    z = np.exp(-np.abs(a))  # as the engine does: never exp of a large positive number
    return np.where(a >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def sigmoid_backward(g, out, a):
    return (out * (1.0 - out) * g,)


def maximum(a, b):
    return np.where(a >= b, a, b)


def maximum_backward(g, out, a, b):
    first = a >= b  # ties go to the first operand, as in Value.maximum
    return first * g, ~first * g


def power(k):
    """The kernels of x**k for one exponent k."""
    def forward(a):
        out = a ** k
        _require(np.isfinite(out).all(), f"** {k} has no finite value")
        return out

    def backward(g, out, a):
        if k == 0:
            return (np.zeros_like(a),)
        local = k * a ** (k - 1)
        _require(np.isfinite(local).all(), f"the derivative of ** {k} is not finite")
        return (local * g,)
    return forward, backward


KERNELS = {
    "+": (add, add_backward),
    "*": (mul, mul_backward),
    "tanh": (tanh, tanh_backward),
    "exp": (exp, exp_backward),
    "log": (log, log_backward),
    "ReLU": (relu, relu_backward),
    "sigmoid": (sigmoid, sigmoid_backward),
    "max": (maximum, maximum_backward),
}


def kernels_for(op):
    """(forward, backward) for an engine op string, or None if the op is unknown."""
    if op.startswith("**"):
        try:
            return power(float(op[2:]))
        except ValueError:
            return None
    return KERNELS.get(op)


# -- the state of one call and the row indexes steps read and write ------------

class Frame:
    """One call's arrays: values and gradients (rows x batch), the parameters and
    their gradients (flat, in model.parameters() order), the samples' class indices."""

    def __init__(self, values, grads, params, param_grads, classes=None):
        self.values = values
        self.grads = grads
        self.params = params
        self.param_grads = param_grads
        self.classes = classes


class Index:
    """Positions in an array: a slice when they are consecutive (a view, no copy)."""

    def __init__(self, positions):
        positions = [int(p) for p in positions]
        first = positions[0]
        if positions == list(range(first, first + len(positions))):
            self.at = slice(first, first + len(positions))
        else:
            self.at = np.array(positions, dtype=np.intp)
        self.unique = len(set(positions)) == len(positions)

    def add(self, array, values):
        """array[positions] += values, adding once per repeat of a position."""
        if self.unique:
            array[self.at] += values
        else:
            np.add.at(array, self.at, values)


# -- steps ---------------------------------------------------------------------

class ElementwiseStep:
    """out[i] = op(operands[0][i], operands[1][i], ...) for a group of nodes with the same op."""

    def __init__(self, op, out, operands, operands_needing_grad):
        self.op = op
        self.forward_kernel, self.backward_kernel = kernels_for(op)
        self.out = out.at
        self.operands = operands
        self.operands_needing_grad = operands_needing_grad  # positions worth back-propagating into

    def forward(self, frame):
        values = frame.values
        values[self.out] = self.forward_kernel(*(values[o.at] for o in self.operands))

    def backward(self, frame):
        if not self.operands_needing_grad:
            return
        values, grads = frame.values, frame.grads
        inputs = [values[o.at] for o in self.operands]
        local_grads = self.backward_kernel(grads[self.out], values[self.out], *inputs)
        for position in self.operands_needing_grad:
            self.operands[position].add(grads, local_grads[position])


class AffineStep:
    """A layer of neurons: out = W @ inputs + b, each row the chain b + w0*x0 + w1*x1 + ...
    of one neuron, run as one matrix product over the batch."""

    op = "affine"

    def __init__(self, out, inputs, weights, biases, shape, inputs_need_grad):
        if not isinstance(out.at, slice):  # plan() gives a step's nodes consecutive rows
            raise ValueError("an affine step writes a block of consecutive rows")
        self.out = out.at
        self.inputs = inputs
        self.weights = weights  # an Index into the parameters, row-major (neurons x inputs)
        self.biases = biases
        self.shape = shape
        self.inputs_need_grad = inputs_need_grad

    def weight_matrix(self, frame):
        return frame.params[self.weights.at].reshape(self.shape)

    def forward(self, frame):
        """W @ inputs + b written into the output rows (a view): no temporary arrays."""
        values = frame.values
        out = values[self.out]
        np.matmul(self.weight_matrix(frame), values[self.inputs.at], out=out)
        out += frame.params[self.biases.at][:, None]

    def backward(self, frame):
        values, grads = frame.values, frame.grads
        g = grads[self.out]
        self.weights.add(frame.param_grads, (g @ values[self.inputs.at].T).ravel())
        self.biases.add(frame.param_grads, g.sum(axis=1))
        if self.inputs_need_grad:
            self.inputs.add(grads, self.weight_matrix(frame).T @ g)


class PickStep:
    """out[i] = choices[i][class of the sample]: the logit that softmax cross-entropy
    indexes with the target class (traced with a class-index placeholder)."""

    op = "pick"

    def __init__(self, out, choices):
        self.out = out.at
        self.choices = np.asarray(choices, dtype=np.intp)  # nodes x classes, rows of the logits

    def forward(self, frame):
        rows, samples = self._picked(frame)
        frame.values[self.out] = frame.values[rows, samples]

    def backward(self, frame):
        rows, samples = self._picked(frame)
        grads = frame.grads
        for node_rows, g in zip(rows, grads[self.out]):
            grads[node_rows, samples] += g  # one row per sample: no position repeats

    def _picked(self, frame):
        samples = np.arange(len(frame.classes))
        return self.choices[:, frame.classes], samples
