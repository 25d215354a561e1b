"""A sweep's spec: a base JobSpec, a search space over its dotted paths, and how to search it.

Pure data, like core/spec.py: the API validates submissions with it and the service that runs
the sweep (services/sweeps.py, on Optuna) reads the same model back from the database.

    {"spec": {...a JobSpec...},
     "space": {"optimizer.lr": {"type": "float", "low": 0.01, "high": 1, "log": true},
               "model.layers.0": {"type": "int", "low": 4, "high": 32},
               "loss": {"type": "choice", "values": ["hinge", "bce"]},
               "seed": [0, 1, 2]},                      # a bare list is a choice
     "method": "tpe", "trials": 24, "parallelism": 2, "objective": "accuracy",
     "early_stopping": {"rule": "asha", "min_steps": 100, "reduction_factor": 3}}
"""
import copy
import itertools
import math
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from core.spec import Finite, JobSpec, StrictModel

MAX_SPACE_PARAMS = 16
MAX_CHOICES = 100  # values of a choice, and of an int range in a grid
MAX_GRID_POINTS = 10_000  # Optuna's grid sampler lists every point
OBJECTIVES = {"final_loss": "minimize", "val_loss": "minimize", "accuracy": "maximize", "val_accuracy": "maximize"}
Objective = Literal["final_loss", "val_loss", "accuracy", "val_accuracy"]
Path = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")]


class FloatParam(StrictModel):
    type: Literal["float"]
    low: Finite
    high: Finite
    log: bool = Field(False, description="log-uniform instead of uniform (low must be > 0)")

    @model_validator(mode="after")
    def _range(self):
        _check_range(self)
        return self

    def corners(self):
        return [self.low, self.high]


class IntParam(StrictModel):
    type: Literal["int"]
    low: Annotated[int, Field(ge=-2**31, le=2**31)]
    high: Annotated[int, Field(ge=-2**31, le=2**31)]
    step: Annotated[int, Field(ge=1, le=2**31)] = 1
    log: bool = False

    @model_validator(mode="after")
    def _range(self):
        _check_range(self)
        if self.log and self.step != 1:
            raise ValueError("log=true needs step 1")
        return self

    def corners(self):
        return [self.low, self.low + (self.high - self.low) // self.step * self.step]

    def grid(self):
        return range(self.low, self.high + 1, self.step)  # lazy: its length is known without listing it


class ChoiceParam(StrictModel):
    type: Literal["choice"]
    values: list[Any] = Field(min_length=1, max_length=MAX_CHOICES,
                              description="any JSON values (numbers, strings, lists such as model.layers)")

    def corners(self):
        return list(self.values)

    def grid(self):
        return list(self.values)


def _param_kind(value):
    if isinstance(value, list):
        return "list"
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


# A bare list is a choice (turned into one before validation; the schema says a list is welcome).
Param = Annotated[Union[Annotated[FloatParam, Tag("float")], Annotated[IntParam, Tag("int")],
                        Annotated[ChoiceParam, Tag("choice")], Annotated[list[Any], Tag("list")]],
                  Discriminator(_param_kind)]


class EarlyStopping(StrictModel):
    """Prunes running trials on their reported loss history (lower is better whatever the objective)."""
    rule: Literal["median", "asha"] = Field(
        description="median: stop a trial whose best loss so far is worse than the median of completed "
                    "trials at the same step; asha: asynchronous successive halving")
    min_steps: Optional[Annotated[int, Field(ge=1, le=2**31)]] = Field(
        None, description="no trial is stopped before this step (asha: the first rung); "
                          "default: the base spec's steps / reduction_factor**3 (median: steps / 10)")
    reduction_factor: Annotated[int, Field(ge=2, le=10)] = Field(3, description="asha: 1/reduction_factor "
                                                                               "of the trials pass each rung")
    startup_trials: Annotated[int, Field(ge=0, le=1000)] = Field(
        5, description="median: completed trials needed before any is stopped")


class SweepSpec(StrictModel):
    spec: JobSpec = Field(default_factory=JobSpec, description="the base training spec every trial starts from")
    space: dict[Path, Param] = Field(
        min_length=1, max_length=MAX_SPACE_PARAMS,
        description="dotted spec path (list items by index, e.g. model.layers.0) -> its range or choices")
    method: Literal["grid", "random", "tpe"] = "tpe"
    trials: Optional[Annotated[int, Field(ge=1)]] = Field(
        None, description="how many trials in all; default: the grid's size for grid, else 10")
    parallelism: Annotated[int, Field(ge=1)] = Field(1, description="trials queued or running at once")
    objective: Objective = Field("final_loss", description="the metric to optimise: final_loss and val_loss "
                                                           "are minimised, accuracy and val_accuracy maximised")
    early_stopping: Optional[EarlyStopping] = None
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = Field(0, description="the search's seed (not the trials')")

    @field_validator("space", mode="before")
    @classmethod
    def _bare_lists_are_choices(cls, space):
        if isinstance(space, dict):
            return {path: {"type": "choice", "values": p} if isinstance(p, list) else p for path, p in space.items()}
        return space

    def problems(self) -> list[tuple[tuple, str]]:
        """What the field types cannot say, as (location, message): paths that are not in the spec, a grid
        over a float range or smaller than `trials`, a validation objective without validation data."""
        found = []
        base = self.base_dict()
        for path, param in self.space.items():
            if not _path_exists(base, path.split(".")):
                found.append((("space", path), f"{path!r} is not a path of the spec"))
            elif self.method == "grid" and isinstance(param, FloatParam):
                found.append((("space", path), "grid search needs choices or int ranges, this is a float range"))
            elif self.method == "grid" and len(param.grid()) > MAX_CHOICES:
                found.append((("space", path), f"a grid takes at most {MAX_CHOICES} values of a parameter, "
                                               f"this range has {len(param.grid())}"))
        if self.method == "grid" and not found and self.grid_size() > MAX_GRID_POINTS:
            found.append((("space",), f"the grid has {self.grid_size()} points, at most {MAX_GRID_POINTS}"))
        if self.method == "grid" and not found and self.trials is not None and self.trials > self.grid_size():
            found.append((("trials",), f"{self.trials} trials but the grid has {self.grid_size()} points"))
        if self.objective.startswith("val_") and not self._has_validation():
            found.append((("objective",), f"{self.objective} needs data.validation_fraction > 0 in the spec"))
        return found

    def _has_validation(self):
        return self.spec.data.validation_fraction > 0 or "data.validation_fraction" in self.space

    @property
    def direction(self) -> str:
        return OBJECTIVES[self.objective]

    @property
    def trial_count(self) -> int:
        if self.trials is not None:
            return self.trials
        return self.grid_size() if self.method == "grid" else 10

    def objective_value(self, metrics: Optional[dict]) -> Optional[float]:
        """The objective from a job's metrics; None when missing or not finite."""
        value = (metrics or {}).get(self.objective)
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    def grid_size(self) -> int:
        return math.prod(len(p.grid()) for p in self.space.values())

    def base_dict(self) -> dict:
        return self.spec.model_dump(mode="json")

    def trial_spec(self, params: dict) -> JobSpec:
        """The base spec with `params` ({path: value}) put in; raises pydantic's ValidationError."""
        return JobSpec.model_validate(apply_params(self.base_dict(), params))

    def corner_params(self, limit: int = 1024):
        """Parameter sets to check at submission: each parameter's extremes (or every choice) alone, then
        every combination of them when there are at most `limit`. Yields (paths it varies, params)."""
        corners = {path: p.corners() for path, p in self.space.items()}
        for path, values in corners.items():
            for value in values:
                yield [path], {path: value}
        if math.prod(len(v) for v in corners.values()) <= limit and len(corners) > 1:
            for combination in itertools.product(*corners.values()):
                yield list(corners), dict(zip(corners, combination))


def apply_params(spec: dict, params: dict) -> dict:
    """A copy of the spec dict with each dotted path set to its value (list items by index)."""
    spec = copy.deepcopy(spec)
    for path, value in params.items():
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node[_key(node, key)]
        node[_key(node, last)] = copy.deepcopy(value)
    return spec


def _path_exists(node, keys) -> bool:
    for key in keys:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return False
    return True


def _key(node, key):
    return int(key) if isinstance(node, list) else key


def _check_range(param):
    if param.low > param.high:
        raise ValueError(f"low ({param.low}) is above high ({param.high})")
    if param.log and param.low <= 0:
        raise ValueError(f"log=true needs low > 0, got {param.low}")
