"""A training job's spec: what to train, on what, how, and what to record.

Every field has a default, so `{}` is a valid spec: the seed's example
(MLP(3, [4, 4, 1]) on its four samples, sum of squared errors, SGD lr 0.1).
The API validates submissions with this model and the worker reads the very
same model back from the database."""
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

Activation = Literal["tanh", "relu", "sigmoid", "linear"]
LossName = Literal["sse", "mse", "hinge", "bce", "softmax_ce"]
GeneratorName = Literal["seed", "moons", "circles", "xor", "spirals", "blobs"]
CLASSIFICATION_LOSSES = ("hinge", "bce", "softmax_ce")

PositiveInt = Annotated[int, Field(ge=1)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ModelSpec(StrictModel):
    inputs: Optional[PositiveInt] = Field(None, description="input width; inferred from the data when omitted")
    layers: list[PositiveInt] = Field(default_factory=lambda: [4, 4, 1], min_length=1,
                                      description="neurons per layer, the last one is the output")
    activations: Union[Activation, list[Activation]] = Field(
        "tanh", description="one activation for every layer, or one per layer")

    @model_validator(mode="after")
    def _one_activation_per_layer(self):
        if isinstance(self.activations, list) and len(self.activations) != len(self.layers):
            raise ValueError(f"activations has {len(self.activations)} entries but there are "
                             f"{len(self.layers)} layers")
        return self

    def activation_list(self):
        if isinstance(self.activations, str):
            return [self.activations] * len(self.layers)
        return list(self.activations)


class InlineData(StrictModel):
    kind: Literal["inline"] = "inline"
    xs: list[list[Finite]] = Field(min_length=1)
    ys: Union[list[Finite], list[list[Finite]]] = Field(min_length=1,
                                                        description="targets: numbers, labels or class indices")
    validation_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0

    @model_validator(mode="after")
    def _rectangular(self):
        if len(self.xs) != len(self.ys):
            raise ValueError(f"xs has {len(self.xs)} samples but ys has {len(self.ys)}")
        width = len(self.xs[0])
        if width == 0 or any(len(x) != width for x in self.xs):
            raise ValueError("every sample in xs must have the same, non-zero number of inputs")
        return self

    def input_count(self):
        return len(self.xs[0])

    def sample_count(self):
        return len(self.xs)


class GeneratedData(StrictModel):
    kind: GeneratorName
    n_samples: Annotated[int, Field(ge=2)] = 100
    noise: Annotated[float, Field(ge=0, le=10)] = 0.1
    classes: Annotated[int, Field(ge=2, le=100)] = 2
    validation_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0

    @model_validator(mode="after")
    def _binary_kinds_have_two_classes(self):
        if self.kind in ("moons", "circles", "xor") and self.classes != 2:
            raise ValueError(f"{self.kind} has 2 classes; classes={self.classes} needs spirals or blobs")
        return self

    def input_count(self):
        return 3 if self.kind == "seed" else 2

    def class_count(self):
        return 2 if self.kind == "seed" else self.classes

    def sample_count(self):
        return 4 if self.kind == "seed" else self.n_samples


def _default_data():
    return GeneratedData(kind="seed")


DataSpec = Annotated[Union[InlineData, GeneratedData], Field(discriminator="kind")]


class OptimizerSpec(StrictModel):
    name: Literal["sgd", "adam"] = "sgd"
    lr: Annotated[float, Field(gt=0, le=1e3)] = 0.1
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    beta1: Annotated[float, Field(ge=0, lt=1)] = 0.9
    beta2: Annotated[float, Field(ge=0, lt=1)] = 0.999
    eps: Annotated[float, Field(gt=0, le=1)] = 1e-8
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    final_lr: Annotated[float, Field(ge=0, le=1e3)] = 0.0


class RecordSpec(StrictModel):
    graph_svg: bool = True
    loss_every: PositiveInt = Field(1, description="keep the loss of every n-th step (the last step is always kept)")


class JobSpec(StrictModel):
    model: ModelSpec = Field(default_factory=ModelSpec)
    data: DataSpec = Field(default_factory=_default_data)
    loss: LossName = "sse"
    l2: Annotated[float, Field(ge=0, le=1e3)] = 0.0
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    steps: PositiveInt = 100
    batch_size: Optional[PositiveInt] = Field(None, description="samples per step; full batch when omitted")
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    engine: Literal["compiled", "interpreted"] = "compiled"
    time_limit_seconds: Optional[Annotated[float, Field(gt=0)]] = None
    record: RecordSpec = Field(default_factory=RecordSpec)

    @model_validator(mode="after")
    def _consistent(self):
        n_inputs = self.data.input_count()
        if self.model.inputs is not None and self.model.inputs != n_inputs:
            raise ValueError(f"model.inputs is {self.model.inputs} but the data has {n_inputs} inputs")
        outputs = self.model.layers[-1]
        if self.loss in ("hinge", "bce") and outputs != 1:
            raise ValueError(f"loss {self.loss} needs one output neuron, the last layer has {outputs}")
        if isinstance(self.data, GeneratedData):
            self._outputs_fit_the_classes(outputs, self.data.class_count())
        else:
            self._inline_targets_fit(outputs)
        return self

    def _inline_targets_fit(self, outputs):
        """Inline targets must be what the loss can read (the run would fail on its first step)."""
        if self.loss == "softmax_ce" and outputs < 2:
            raise ValueError(f"softmax_ce needs one output per class (at least 2), the last layer has {outputs}")
        from core.train import encode_targets  # (it imports the compiled engine's NumPy: only when needed)
        encode_targets(self.loss, self.data.ys, outputs, labels_are_classes=False)

    def _outputs_fit_the_classes(self, outputs, classes):
        if self.loss == "softmax_ce" and outputs != classes:
            raise ValueError(f"softmax_ce over {classes} classes needs {classes} outputs, "
                             f"the last layer has {outputs}")
        if self.loss in ("hinge", "bce") and classes != 2:
            raise ValueError(f"loss {self.loss} is for 2 classes, the data has {classes}")
        if self.loss in ("sse", "mse") and (outputs == 1 and classes != 2 or 1 < outputs < classes):
            raise ValueError(f"{self.loss} over {classes} classes needs one output per class "
                             f"(or one output for 2 classes), the last layer has {outputs}")

    def input_count(self):
        return self.model.inputs or self.data.input_count()

    def estimated_nodes_per_step(self):
        """Scalar graph nodes one training step builds in the interpreted engine."""
        sizes = [self.input_count()] + self.model.layers
        per_sample = sum(3 * nin * nout + 2 * nout for nin, nout in zip(sizes, sizes[1:]))
        per_sample += 8 * sizes[-1]  # the loss term
        batch = min(self.batch_size or self.data.sample_count(), self.data.sample_count())
        return per_sample * batch
