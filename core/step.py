"""One step's loss and gradients on the interpreted engine: the forward pass over a
batch, the loss (with L2), zeroed gradients and backward. core.train runs it, and
core.compile falls back to it for a batch its tape cannot replay; it sits below both."""
import gc
from contextlib import contextmanager

from core.losses import batch_loss, l2_penalty


def interpreted_loss_and_grads(model, loss_name, l2, xs, ys):
    """Set every p.grad to d(batch loss incl. L2)/dp; return (loss, outputs)."""
    with cycle_collector_paused():
        outputs = [model(x) for x in xs]
        loss = batch_loss(loss_name, outputs, ys)
        if l2:
            loss = loss + l2_penalty(model.parameters(), l2)
        model.zero_grad()  # always, so the seed's accumulating-gradient bug cannot come back
        loss.backward()
        return loss.data, [output_data(out) for out in outputs]


def output_data(output):
    return [o.data for o in output] if isinstance(output, list) else output.data


@contextmanager
def cycle_collector_paused():
    """A step allocates ~100k nodes that refcounting frees (a graph has no
    cycles); the cycle collector would scan them over and over, finding
    nothing, and cost ~40% of the step (far more for million-node steps)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
