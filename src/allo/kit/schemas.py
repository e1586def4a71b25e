from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict

# How pydantic writes what these encoders meet: UTC timestamps with "Z", enums by value, UUIDs as text.
JSON_OPTIONS = orjson.OPT_UTC_Z


class StrictInput(BaseModel):
    """Request bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class RowEncoder:
    """A read model's JSON object for a database row that already holds its fields' values and types (a
    Core row: the column types did the conversions), without validating every row again.

    Built from the model itself, so a field added to the model is encoded too: its fields read off the
    row by name, its computed fields evaluated on the row, and the fields named in `given` supplied by
    the caller for each row. Pydantic's output for the same values is the reference (tested per model).
    """

    def __init__(self, model: type[BaseModel], *, given: Iterable[str] = ()) -> None:
        supplied = set(given)
        unknown = supplied - set(model.model_fields)
        if unknown:
            raise ValueError(f"{model.__name__} has no fields {sorted(unknown)}")
        self.read = tuple(name for name in model.model_fields if name not in supplied)
        getter = operator.attrgetter(*self.read)
        self._values: Callable[[Any], tuple[Any, ...]] = (
            getter if len(self.read) > 1 else lambda row: (getter(row),)
        )
        self._computed = tuple(
            (name, info.wrapped_property.fget)
            for name, info in model.model_computed_fields.items()
            if info.wrapped_property.fget is not None
        )

    def encode(self, row: Any, **given: Any) -> dict[str, Any]:
        item = dict(zip(self.read, self._values(row), strict=True))
        for name, compute in self._computed:
            item[name] = compute(row)
        item.update(given)
        return item


def _pydantic_default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):  # a driver's own subclass (asyncpg's), which orjson does not take
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_bytes(value: Any) -> bytes:
    """JSON as pydantic writes it, for dicts, lists, dataclasses and models of the usual types."""
    return orjson.dumps(value, option=JSON_OPTIONS, default=_pydantic_default)
