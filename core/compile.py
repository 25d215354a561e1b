"""The compiled engine: trace one sample's graph once, replay it over a whole batch.

compile_loss() traces model + per-sample loss on placeholders and plans a flat tape
(core/compile_trace.py) whose steps run vectorised over the batch with NumPy
(core/compile_steps.py). The tape reads the parameters from one array and writes
their gradients to another (core/param_array.py): train() keeps them there for the
whole run, and loss_and_grads() fills them from the Values and writes the
gradients back, so the Value API works exactly as with the interpreted engine,
which remains the reference."""
import logging
import math
from collections import OrderedDict

import numpy as np

from core.compile_steps import Frame, Unreplayable
from core.compile_trace import CLASS_INDEX_LOSSES, CannotCompile, plan, trace_sample
from core.losses import LOSSES
from core.nn import MLP
from core.param_array import ParamArray
from core.step import interpreted_loss_and_grads

__all__ = ["CannotCompile", "CompiledLoss", "compile_loss"]

log = logging.getLogger(__name__)

BUFFERS_KEPT = 4  # batch sizes whose arrays stay allocated (full batches and the last, short one)
PROGRAMS_KEPT = 32  # architectures whose tapes stay planned (a worker runs many jobs of a few shapes)
_programs = OrderedDict()  # (architecture, loss, n_inputs) -> the planned tape, most recently used last


def compile_loss(model, loss_name, l2, n_inputs):
    """The batch loss of model under loss_name (+ l2 * sum p^2), compiled for samples of
    n_inputs numbers. Raises CannotCompile(reason) if the graph has anything the tape
    cannot replay; use the interpreted engine then.

    The tape reads parameters by position, never their values, so for an MLP it is planned once
    per architecture (repr(MLP): each layer's neurons, their fan-in and activation), loss and
    input width, and reused for every model of that shape. Any other model is traced afresh:
    nothing says its repr describes its computation."""
    parameters = model.parameters()
    key = _program_key(model, loss_name, n_inputs)
    if key is None:
        return CompiledLoss(model, loss_name, l2, plan(trace_sample(model, loss_name, n_inputs), parameters),
                            parameters)
    program = _programs.get(key)
    if program is None:
        program = plan(trace_sample(model, loss_name, n_inputs), parameters)
        _programs[key] = program
        if len(_programs) > PROGRAMS_KEPT:
            _programs.popitem(last=False)
    _programs.move_to_end(key)
    return CompiledLoss(model, loss_name, l2, program, parameters)


def is_planned(model, loss_name, n_inputs) -> bool:
    """Whether compile_loss would reuse a planned tape for this model (an MLP of a shape seen before, see
    compile_loss): then it answers at once, with nothing to trace."""
    key = _program_key(model, loss_name, n_inputs)
    return key is not None and key in _programs


def _program_key(model, loss_name, n_inputs):
    """The key of a model's planned tape in _programs (see compile_loss); None for a model that is no MLP."""
    return (repr(model), loss_name, n_inputs) if type(model) is MLP else None


class CompiledLoss:
    """A model's batch loss as a tape; loss_and_grads(xs, ys) runs it on a batch."""

    def __init__(self, model, loss_name, l2, program, parameters):
        self.model = model
        self.loss_name = loss_name
        self.l2 = float(l2)
        self.program = program
        self.parameters = parameters
        self.mean = LOSSES[loss_name][1] == "mean"
        self.class_targets = loss_name in CLASS_INDEX_LOSSES
        self._buffers = {}

    def __repr__(self):
        products = sum(step.op == "affine" for step in self.program.steps)
        return (f"CompiledLoss({self.loss_name}: {len(self.program.steps)} steps, {products} of them "
                f"matrix products, {self.program.n_rows} rows per sample)")

    def loss_and_grads(self, xs, ys, fallback=True):
        """(batch loss incl. L2, per-sample outputs); sets every parameter's .grad to
        d(loss)/d(parameter). A batch that reaches a value where the interpreted engine
        raises or returns inf/nan is run by the interpreted engine, so the answer
        (or the error) is always the interpreted one; with fallback=False it raises
        OverflowError instead (a batch too big for one interpreted graph)."""
        params = ParamArray(self.parameters)
        result = self.array_loss_and_grads(xs, ys, params, fallback)
        params.write_grads()
        return result

    def array_loss_and_grads(self, xs, ys, params, fallback=True, arrays=None):
        """loss_and_grads() on a ParamArray of this model's parameters: reads params.data and sets
        params.grad, leaving the Values alone (but for a batch the interpreted engine runs).
        arrays: batch_arrays(xs, ys) if the caller has them already (core/batches.py)."""
        inputs, targets = arrays if arrays is not None else self.batch_arrays(xs, ys)
        try:
            with np.errstate(all="ignore"):
                loss, outputs, grads = self._replay(inputs, targets, params.data)
            if not (math.isfinite(loss) and np.isfinite(grads).all()):
                raise Unreplayable("the loss or a gradient is not finite")
        except Unreplayable as reason:
            if not fallback:
                raise OverflowError(f"not replayable: {reason}") from None
            log.info("this batch runs on the interpreted engine: %s", reason)
            return self._interpreted(xs, ys, params)
        params.grad = grads
        return loss, outputs

    def _interpreted(self, xs, ys, params):
        params.write_back()  # the interpreted engine reads the Values
        result = interpreted_loss_and_grads(self.model, self.loss_name, self.l2, xs, ys)
        params.read_grads()
        return result

    def _replay(self, inputs, targets, params):
        program, n = self.program, len(inputs)
        values, grads = self._arrays(n)
        values[program.input_rows.at] = inputs.T
        if not self.class_targets:
            values[program.target_rows.at] = targets.T
        frame = Frame(values, grads, params, np.zeros_like(params), targets if self.class_targets else None)
        if program.param_rows is not None:
            values[program.param_rows.at] = params[program.param_row_params.at][:, None]

        for step in program.steps:
            step.forward(frame)
        scale = 1.0 / n if self.mean else 1.0
        loss = float(values[program.term_row].sum()) * scale
        if self.l2:  # (as the interpreted engine: no penalty at all, not 0 * an overflowed p @ p = NaN)
            loss += float(params @ params) * self.l2

        grads.fill(0.0)
        grads[program.term_row] = scale
        for step in reversed(program.steps):
            step.backward(frame)
        if program.param_rows is not None:
            program.param_row_params.add(frame.param_grads, grads[program.param_rows.at].sum(axis=1))
        frame.param_grads += 2.0 * (params * self.l2)  # d(l2 * p*p)/dp, as the interpreted graph adds it
        return loss, self._outputs(values), frame.param_grads

    def _outputs(self, values):
        outputs = values[self.program.output_rows.at]
        return outputs[0].tolist() if self.program.single_output else outputs.T.tolist()

    def _arrays(self, n):
        """The (rows x n) value and gradient arrays, constants filled in."""
        if n not in self._buffers:
            if len(self._buffers) >= BUFFERS_KEPT:
                self._buffers.pop(next(iter(self._buffers)))
            values = np.empty((self.program.n_rows, n))
            if self.program.constant_rows is not None:
                values[self.program.constant_rows.at] = np.array(self.program.constant_values)[:, None]
            self._buffers[n] = values, np.empty_like(values)
        return self._buffers[n]

    def batch_arrays(self, xs, ys):
        """The batch as arrays: inputs (n x inputs), targets (n x outputs) or class indices (n);
        ValueError if it does not fit the model."""
        program = self.program
        inputs = _float_array(xs, "xs")
        n_inputs = program.n_inputs
        if inputs.ndim != 2 or inputs.shape[1] != n_inputs or len(inputs) == 0:
            raise ValueError(f"xs must be a non-empty list of samples of {n_inputs} numbers, got shape {inputs.shape}")
        if len(ys) != len(inputs):
            raise ValueError(f"{len(inputs)} samples in xs but {len(ys)} targets in ys")
        if self.class_targets:
            return inputs, _class_indices(ys, program.n_classes)
        targets = _float_array(ys, "ys")
        n_outputs = program.n_outputs
        expected = (len(inputs),) if program.single_output else (len(inputs), n_outputs)
        if targets.shape != expected:
            kind = "a number" if program.single_output else f"a list of {n_outputs} numbers"
            raise ValueError(f"each target must be {kind} (the model's output), got shape {targets.shape[1:]}")
        return inputs, targets.reshape(len(inputs), -1)


def _float_array(rows, name):
    try:
        return np.asarray(rows, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numbers in equal-length lists: {error}") from None


def _class_indices(ys, n_classes):
    classes = np.asarray(ys)
    if classes.ndim != 1 or not np.issubdtype(classes.dtype, np.number):
        raise ValueError("softmax cross-entropy targets must be class indices")
    as_int = classes.astype(np.intp)
    if (as_int != classes).any() or (as_int < 0).any() or (as_int >= n_classes).any():
        raise ValueError(f"class indices must be whole numbers in [0, {n_classes}), got {sorted(set(ys))[:5]}")
    return as_int
