"""Searching jobs: a small typed filter on spec fields and metrics, and sort keys, turned into SQL.

    optimizer.lr >= 0.05 and metrics.val_accuracy > 0.9 and data.kind = moons

A filter is conditions joined by `and`; a condition is `field op value`. Fields come from a whitelist
(every number or choice in core/spec.py's JobSpec, by dotted path, and `metrics.<name>`); numbers take
= != < <= > >=, choices (strings) take = and !=. Values are bound as parameters, never written into SQL.
JSON fields are read with SQLAlchemy's JSON operators, which render for SQLite and PostgreSQL alike."""
import re
import typing
from dataclasses import dataclass
from typing import Literal, Optional, Union

from pydantic import BaseModel
from sqlalchemy import ColumnElement

from core.spec import JobSpec
from services.store.models import Job

METRIC_NAMES = ("final_loss", "accuracy", "val_loss", "val_accuracy", "steps_done")  # what core.train reports
COLUMN_SORTS = {"created_at": Job.created_at, "name": Job.name}
OPERATORS = {"=": "__eq__", "==": "__eq__", "!=": "__ne__", "<": "__lt__", "<=": "__le__", ">": "__gt__",
             ">=": "__ge__"}
MAX_CONDITIONS = 20
TOKEN = re.compile(r"""\s*(?:(?P<op>>=|<=|!=|==|=|>|<)|(?P<quoted>'[^']*'|"[^"]*")|(?P<word>[A-Za-z0-9_.+\-]+)"""
                   r"""|(?P<bad>\S+))""")


class FilterError(ValueError):
    """A filter or sort key that cannot be used; the message names the offending token."""


def _spec_fields(model: type[BaseModel], prefix: str = "") -> dict[str, str]:
    """Dotted path -> "number" or "string", for every number and choice of the spec (lists are left out)."""
    fields = {}
    for name, info in model.model_fields.items():
        kind = _kind(info.annotation)
        path = prefix + name
        if isinstance(kind, list):  # nested models (the data's union: the fields of every variant)
            for sub in kind:
                fields.update(_spec_fields(sub, path + "."))
        elif kind is not None:
            fields[path] = kind
    return fields


def _kind(annotation):
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _kind(args[0])
    if origin is Union:
        kinds = [_kind(a) for a in args]
        if all(isinstance(k, list) for k in kinds):
            return [m for k in kinds for m in k]
        return kinds[0] if len(set(map(str, kinds))) == 1 else None
    if origin is Literal:
        return "string" if all(isinstance(a, str) for a in args) else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if annotation in (int, float):
        return "number"
    return None


FIELDS = {**_spec_fields(JobSpec), **{f"metrics.{name}": "number" for name in METRIC_NAMES}}


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Union[float, str]


def column(field: str) -> ColumnElement:
    """The SQL expression of a whitelisted field (KeyError for any other)."""
    kind = FIELDS[field]
    if field == "metrics.final_loss":
        return Job.final_loss  # the same number, in an indexed column
    if field.startswith("metrics."):
        return Job.metrics[field.split(".", 1)[1]].as_float()
    path = Job.spec[tuple(field.split("."))]
    return path.as_float() if kind == "number" else path.as_string()


def sort_column(key: str) -> ColumnElement:
    if key in COLUMN_SORTS:
        return COLUMN_SORTS[key]
    if key not in FIELDS:
        raise FilterError(f"cannot sort by {key!r}: use created_at, name, a spec field such as optimizer.lr, "
                          f"or metrics.<{'|'.join(METRIC_NAMES)}>")
    return column(key)


def parse_filter(text: str) -> list[Condition]:
    tokens = [(m.lastgroup, m.group(m.lastgroup)) for m in TOKEN.finditer(text) if m.lastgroup]
    conditions = []
    position = 0

    def take(what):
        nonlocal position
        if position >= len(tokens):
            after = f" after {tokens[-1][1]!r}" if tokens else ""
            raise FilterError(f"the filter ends{after} where {what} was expected")
        position += 1
        return tokens[position - 1]

    while True:
        kind, field = take("a field")
        if kind != "word" or field not in FIELDS:
            raise FilterError(f"unknown field {field!r}; filter on a spec field such as optimizer.lr or data.kind, "
                              f"or on metrics.<{'|'.join(METRIC_NAMES)}>")
        kind, op = take(f"an operator after {field!r}")
        if kind != "op":
            raise FilterError(f"expected an operator (= != < <= > >=) after {field!r}, got {op!r}")
        kind, raw = take(f"a value after {field} {op}")
        conditions.append(_condition(field, op, kind, raw))
        if position == len(tokens):
            break
        kind, joiner = take("and")
        if kind != "word" or joiner.lower() != "and":
            raise FilterError(f"expected 'and' between conditions, got {joiner!r}")
        if len(conditions) >= MAX_CONDITIONS:
            raise FilterError(f"more than {MAX_CONDITIONS} conditions")
    return conditions


def _condition(field, op, kind, raw) -> Condition:
    if kind not in ("word", "quoted"):
        raise FilterError(f"expected a value after {field} {op}, got {raw!r}")
    if FIELDS[field] == "string":
        if op not in ("=", "==", "!="):
            raise FilterError(f"{field} is a choice: compare it with = or !=, not {op!r}")
        return Condition(field, op, raw[1:-1] if kind == "quoted" else raw)
    try:
        number = float(raw) if kind == "word" else None
    except ValueError:
        number = None
    if number is None or number != number or number in (float("inf"), float("-inf")):
        raise FilterError(f"{field} is a number: {raw!r} is not a finite number")
    return Condition(field, op, number)


def where(conditions: list[Condition]) -> list[ColumnElement]:
    """The conditions as SQL, each value a bound parameter."""
    return [getattr(column(c.field), OPERATORS[c.op])(c.value) for c in conditions]
