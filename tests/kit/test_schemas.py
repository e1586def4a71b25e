"""RowEncoder: a read model's JSON from a plain row, the same as pydantic's."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
import pytest
from pydantic import BaseModel, computed_field

from allo.kit.schemas import RowEncoder, json_bytes


class Colour(enum.StrEnum):
    red = "red"


class Inner(BaseModel):
    at: datetime


class Thing(BaseModel):
    id: uuid.UUID
    number: int
    colour: Colour
    seen_at: datetime | None
    tags: list[str]
    inner: Inner | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        return f"#{self.number:04d}"


def row(**values: object) -> SimpleNamespace:
    base: dict[str, object] = {
        "id": uuid.uuid4(),
        "number": 7,
        "colour": Colour.red,
        "seen_at": datetime(2026, 11, 23, 8, 0, 0, 120000, tzinfo=UTC),
        "tags": ["a", "b"],
        "unrelated": object(),  # columns the model does not show are left out
    }
    return SimpleNamespace(**{**base, **values})


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"seen_at": None, "tags": []},
        {"seen_at": datetime(2026, 1, 1, tzinfo=UTC)},  # no fraction of a second
        {"seen_at": datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)},
    ],
)
def test_the_json_is_pydantics(values: dict[str, object]) -> None:
    source = row(**values)
    inner = Inner(at=datetime(2026, 3, 29, 1, 30, tzinfo=UTC))
    encoded = orjson.loads(json_bytes(RowEncoder(Thing, given=("inner",)).encode(source, inner=inner)))
    expected = Thing.model_validate({**vars(source), "inner": inner}).model_dump(mode="json")
    assert encoded == expected
    assert encoded["label"] == "#0007"


class DriverUuid(uuid.UUID):
    """As asyncpg returns them."""


def test_uuids_of_a_subclass_are_written_as_text() -> None:
    value = DriverUuid(int=42)
    assert orjson.loads(json_bytes({"id": value})) == {"id": str(uuid.UUID(int=42))}


def test_given_fields_must_be_the_models() -> None:
    with pytest.raises(ValueError, match="no fields"):
        RowEncoder(Thing, given=("colour", "nickname"))


def test_a_model_of_one_field() -> None:
    class One(BaseModel):
        number: int

    assert RowEncoder(One).encode(row()) == {"number": 7}
