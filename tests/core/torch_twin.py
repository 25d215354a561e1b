"""The same MLP and losses written in PyTorch (float64): the gradient reference."""


class LazyTorch:
    """`torch`, imported when a test first uses it rather than when its module is collected. Every xdist worker
    collects every module, and importing torch costs a few CPU seconds; the modules that use it form one xdist
    group (tests/conftest.py), so only the worker that runs them imports it."""

    def __getattr__(self, name):
        if name.startswith("__"):  # pytest asks every module-level object for `__test__` when it collects
            raise AttributeError(name)
        import torch as module
        return getattr(module, name)


torch = LazyTorch()
ACTIVATIONS = {"tanh": lambda t: torch.tanh(t), "relu": lambda t: torch.relu(t),
               "sigmoid": lambda t: torch.sigmoid(t), "linear": lambda t: t}


def torch_parameters(params_json):
    """One (W, b, activation) per layer, as leaf tensors that require grad."""
    layers = []
    for layer in params_json["layers"]:
        w = torch.tensor([n["w"] for n in layer["neurons"]], dtype=torch.float64, requires_grad=True)
        b = torch.tensor([n["b"] for n in layer["neurons"]], dtype=torch.float64, requires_grad=True)
        layers.append((w, b, layer["activation"]))
    return layers


def torch_forward(layers, xs):
    h = torch.tensor(xs, dtype=torch.float64)
    for w, b, activation in layers:
        h = ACTIVATIONS[activation](h @ w.T + b)
    return h  # (samples, outputs)


def torch_loss(name, out, ys, layers, l2):
    if name in ("sse", "mse"):
        target = torch.tensor(ys, dtype=torch.float64).reshape(out.shape)
        per_sample = ((out - target) ** 2).sum(dim=1)
    elif name == "hinge":
        per_sample = torch.relu(1 - torch.tensor(ys, dtype=torch.float64) * out[:, 0])
    elif name == "bce":
        per_sample = torch.nn.functional.binary_cross_entropy_with_logits(
            out[:, 0], torch.tensor(ys, dtype=torch.float64), reduction="none")
    else:
        per_sample = torch.nn.functional.cross_entropy(out, torch.tensor(ys), reduction="none")
    loss = per_sample.sum() if name == "sse" else per_sample.mean()
    if l2:
        loss = loss + l2 * sum((w ** 2).sum() + (b ** 2).sum() for w, b, _ in layers)
    return loss


def torch_loss_and_grads(params_json, name, l2, xs, ys):
    """(loss, [grad per parameter in MLP.parameters() order])."""
    layers = torch_parameters(params_json)
    loss = torch_loss(name, torch_forward(layers, xs), ys, layers, l2)
    loss.backward()
    grads = []
    for w, b, _ in layers:
        for j in range(w.shape[0]):
            grads.extend(w.grad[j].tolist())
            grads.append(b.grad[j].item())
    return loss.item(), grads
