"""Losses, each written as a per-sample function of the model's output and the
target plus a reduction over the batch ("sum" or "mean"). Keeping the sample
term separate lets the compiled engine trace it once and replay it per sample.

Every sample term is branch-free at graph level (relu and maximum are ops, not
Python ifs), so the graph's shape never depends on the data.

Targets: squared errors take numbers (or lists for several outputs); hinge
takes labels -1/+1; binary cross-entropy takes 0/1; softmax cross-entropy
takes a class index."""

def squared_error(output, target):
    if isinstance(output, list):
        return sum((o - t) ** 2 for o, t in zip(output, target))
    return (output - target) ** 2


def hinge(score, label):
    """The max-margin loss of micrograd's moons demo."""
    return (1 + -label * score).relu()


def bce_with_logits(logit, label):
    """-[y log s(z) + (1-y) log(1-s(z))] = relu(z) - z*y + log(1 + exp(-|z|)), never exp of a large number."""
    abs_logit = logit.relu() + (-logit).relu()
    return logit.relu() - logit * label + (1 + (-abs_logit).exp()).log()


def softmax_cross_entropy(logits, cls):
    """-log softmax(logits)[cls], shifting by the max logit so exp never overflows."""
    if not isinstance(logits, list):
        raise ValueError("softmax_ce needs one logit per class: a last layer with several outputs")
    top = logits[0]
    for z in logits[1:]:
        top = top.maximum(z)
    log_sum_exp = top + sum((z - top).exp() for z in logits).log()
    return log_sum_exp - logits[cls]


LOSSES = {  # name -> (sample term, reduction)
    "sse": (squared_error, "sum"),
    "mse": (squared_error, "mean"),
    "hinge": (hinge, "mean"),
    "bce": (bce_with_logits, "mean"),
    "softmax_ce": (softmax_cross_entropy, "mean"),
}


def batch_loss(name, outputs, targets):
    """The loss of a whole batch, as a Value to call backward() on."""
    term, reduction = LOSSES[name]
    total = sum(term(o, t) for o, t in zip(outputs, targets))
    return total * (1.0 / len(outputs)) if reduction == "mean" else total


def l2_penalty(parameters, alpha):
    """alpha * sum(p^2), the micrograd demo's regularisation."""
    return alpha * sum(p * p for p in parameters)

