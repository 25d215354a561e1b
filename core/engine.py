"""A scalar autograd engine: each Value remembers its children and the local
derivative of itself with respect to each child, so backward() is one
multiply-add per edge. No closures are stored, so a graph holds no reference
cycles and is freed as soon as its root goes (the seed's closures made every
graph a cycle for the garbage collector to find)."""
import math


class Value:
    __slots__ = ("data", "grad", "_prev", "_local", "_op", "label")

    def __init__(self, data, _children=(), _op="", label="", _local=()):
        self.data = data
        self.grad = 0.0
        self._prev = _children   # a tuple, in operand order: iteration is deterministic
        self._local = _local     # d(self)/d(child) for each child, computed in the forward pass
        self._op = _op
        self.label = label

    def __repr__(self):
        return f"Value(data={self.data})"

    # -- the primitive ops; everything else is built from them --------------
    # (arguments are passed positionally: this is the hot path of every step)

    def __add__(self, other):
        if not isinstance(other, Value):
            other = as_value(other)
        return Value(self.data + other.data, (self, other), "+", "", (1.0, 1.0))

    def __mul__(self, other):
        if not isinstance(other, Value):
            other = as_value(other)
        return Value(self.data * other.data, (self, other), "*", "", (other.data, self.data))

    def __pow__(self, k):
        if not isinstance(k, (int, float)) or isinstance(k, bool):
            raise TypeError(f"** supports int/float exponents only, got {type(k).__name__}")
        x = float(self.data)  # float, so an overflow raises instead of growing a huge int
        out = _checked("**", lambda: x ** k, f"{x!r} ** {k!r}")
        if k == 0:
            local = 0.0
        elif x == 0 and k < 1:
            local = math.inf  # the slope of x**k at 0 for 0 < k < 1
        else:
            local = _checked(f"**{k} (its derivative)", lambda: k * x ** (k - 1), f"{k!r} * {x!r} ** {k - 1!r}")
        return Value(out, (self,), f"**{k}", "", (local,))

    def tanh(self):
        t = math.tanh(self.data)  # stable for any input, unlike the (e^2x - 1)/(e^2x + 1) form
        return Value(t, (self,), "tanh", "", (1.0 - t * t,))

    def exp(self):
        x = self.data
        e = _checked("exp", lambda: math.exp(x), f"exp({x!r})")
        return Value(e, (self,), "exp", "", (e,))

    def log(self):
        x = self.data
        if x <= 0:  # (a NaN passes through, so the training loop reports it as divergence)
            raise ValueError(f"log: input must be positive, got {x!r}")
        return Value(math.log(x), (self,), "log", "", (1.0 / x,))

    def relu(self):
        x = self.data
        if x <= 0:
            return Value(0.0, (self,), "ReLU", "", (0.0,))
        return Value(x, (self,), "ReLU", "", (1.0,))  # also for NaN, which must not turn into 0

    def sigmoid(self):
        x = self.data
        if x >= 0:
            s = 1.0 / (1.0 + math.exp(-x))
        else:  # never evaluate exp of a large positive number
            e = math.exp(x)
            s = e / (1.0 + e)
        return Value(s, (self,), "sigmoid", "", (s * (1.0 - s),))

    def maximum(self, other):
        """max(self, other); the gradient flows to the larger operand (to self on ties)."""
        other = as_value(other)
        first = self.data >= other.data
        out = self.data if first else other.data
        return Value(out, (self, other), "max", "", (1.0, 0.0) if first else (0.0, 1.0))

    # -- composites, written the way the seed writes them --------------------

    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + (-other)

    def __truediv__(self, other):
        return self * as_value(other) ** -1

    def __radd__(self, other):  # also makes sum(values) work without a start value
        return self + other

    def __rmul__(self, other):
        return self * other

    def __rsub__(self, other):
        return as_value(other) + (-self)

    def __rtruediv__(self, other):
        return as_value(other) * self ** -1

    # -- backpropagation -----------------------------------------------------

    def backward(self):
        """Fill .grad of every node with d(self)/d(node).

        Interior nodes are reset first, so calling backward() again on the same
        graph (after zeroing the leaves) gives the same gradients; leaves
        accumulate, as in the seed and PyTorch: zero them before each step."""
        topo = topological_order(self)
        for node in topo:
            if node._prev:
                node.grad = 0.0
        self.grad = 1.0
        for node in reversed(topo):
            children = node._prev
            if len(children) == 2:  # most nodes: unrolled, as this is the hottest loop
                left, right = children
                d_left, d_right = node._local
                g = node.grad
                left.grad += d_left * g
                right.grad += d_right * g
            elif children:
                g = node.grad
                for child, local in zip(children, node._local):
                    child.grad += local * g


def as_value(x):
    if isinstance(x, Value):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return Value(x)
    raise TypeError(f"cannot combine Value with {type(x).__name__}")


def topological_order(root):
    """Children before parents, without recursion (deep graphs must not hit the
    recursion limit); the order depends only on the graph, never on ids or hashes.

    A post-order depth-first walk: a node is pushed back under a None marker
    and emitted when the marker comes off, after all its children."""
    order, visited = [], set()
    stack = [root]
    push, pop, visit, emit = stack.append, stack.pop, visited.add, order.append
    while stack:
        node = pop()
        if node is None:
            emit(pop())
        elif node not in visited:
            visit(node)
            push(node)
            push(None)
            for child in reversed(node._prev):
                if child not in visited:
                    push(child)
    return order


def _checked(op, compute, expression):
    """Run compute(); an overflow or a complex result is an error naming the op."""
    try:
        out = compute()
    except OverflowError:
        raise OverflowError(f"{op} overflowed: {expression} is too large for a float") from None
    except ZeroDivisionError:
        raise ZeroDivisionError(f"{op}: {expression} divides by zero") from None
    if isinstance(out, complex):
        raise ValueError(f"{op}: {expression} has no real value")
    if isinstance(out, float) and math.isinf(out):
        raise OverflowError(f"{op} overflowed: {expression} is too large for a float")
    return out
