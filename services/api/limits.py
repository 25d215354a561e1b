"""Submit-time limits: refuse, before anything is queued, specs that would run
for hours or exhaust memory. Each violation names the field it is about, in
the same shape as pydantic's validation errors, so clients see one format."""
from core.spec import InlineData

FORWARD_NODES_PER_PARAMETER = 3  # a weight's multiply and add, and its share of the activations


def spec_limit_errors(spec, settings):
    """A list of {"loc", "msg", "type"} errors; empty when the spec is within limits."""
    errors = []

    def over(loc, msg):
        errors.append({"loc": ("body",) + tuple(loc), "msg": msg, "type": "limit_exceeded", "input": None})

    if spec.steps > settings.MAX_STEPS:
        over(["steps"], f"steps is {spec.steps}, the limit is {settings.MAX_STEPS}")
    samples = spec.data.sample_count()
    if samples > settings.MAX_SAMPLES:
        field = "xs" if isinstance(spec.data, InlineData) else "n_samples"
        over(["data", field], f"{samples} samples, the limit is {settings.MAX_SAMPLES}")
    if spec.input_count() > settings.MAX_LAYER_WIDTH:
        over(["data"], f"{spec.input_count()} inputs per sample, the limit is {settings.MAX_LAYER_WIDTH}")
    if len(spec.model.layers) > settings.MAX_LAYERS:
        over(["model", "layers"], f"{len(spec.model.layers)} layers, the limit is {settings.MAX_LAYERS}")
    for i, width in enumerate(spec.model.layers):
        if width > settings.MAX_LAYER_WIDTH:
            over(["model", "layers", i], f"layer width {width}, the limit is {settings.MAX_LAYER_WIDTH}")
    nodes = spec.estimated_nodes_per_step()
    if nodes > settings.MAX_NODES_PER_STEP:
        over([], f"about {nodes} graph nodes per step (model size x batch size), "
                 f"the limit is {settings.MAX_NODES_PER_STEP}; use a smaller model or batch_size")
    limit = spec.time_limit_seconds
    if limit is not None and limit > settings.MAX_TIME_LIMIT_SECONDS:
        over(["time_limit_seconds"], f"time_limit_seconds is {limit}, the limit is {settings.MAX_TIME_LIMIT_SECONDS}")
    return errors


def predict_limit_errors(xs, n_parameters, settings):
    """Predictions run in the API process: at most MAX_SAMPLES samples, and no more work than one
    training step's graph may hold (MAX_NODES_PER_STEP), so that no request keeps the API busy for long.
    Counted from the job's spec, before its parameters are loaded."""
    if len(xs) > settings.MAX_SAMPLES:
        return [_too_many(f"{len(xs)} samples, the limit is {settings.MAX_SAMPLES}")]
    nodes = len(xs) * FORWARD_NODES_PER_PARAMETER * n_parameters
    if nodes > settings.MAX_NODES_PER_STEP:
        return [_too_many(f"{len(xs)} samples make about {nodes} graph nodes with this model, "
                          f"the limit is {settings.MAX_NODES_PER_STEP}; send fewer samples")]
    return []


def _too_many(msg):
    return {"loc": ("body", "xs"), "msg": msg, "type": "limit_exceeded", "input": None}
