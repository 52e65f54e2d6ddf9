"""``ZeroIsDefault``: Go's zero value of a field means "not set" where the field says so."""

from __future__ import annotations

from enum import StrEnum

import pytest
from pydantic import ValidationError

from swarmlet.models import Model, ZeroIsDefault
from swarmlet.models.base import OWN_JSON


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Paint(Model):
    colour: ZeroIsDefault[Colour] = Colour.RED
    coats: ZeroIsDefault[int] = 2
    ratio: ZeroIsDefault[float] = 0.5
    finish: ZeroIsDefault[str | None] = None
    # Not declared: its zero value is a value.
    shade: Colour = Colour.BLUE
    layers: int = 3


@pytest.mark.parametrize(
    "sent",
    [
        {},
        {"Colour": "", "Coats": 0, "Ratio": 0, "Finish": ""},
        {"Colour": None, "Coats": None, "Ratio": 0.0, "Finish": None},
        {"colour": "", "coats": 0, "ratio": 0.0, "finish": ""},  # by Python name
    ],
)
def test_zero_null_and_missing_give_the_default(sent):
    paint = Paint.from_api(sent)
    assert paint == Paint()
    assert paint.to_api() == {
        "Colour": "red",
        "Coats": 2,
        "Ratio": 0.5,
        "Shade": "blue",
        "Layers": 3,
    }


def test_other_values_are_taken():
    paint = Paint.from_api({"Colour": "blue", "Coats": 1, "Ratio": 0.25, "Finish": "matt"})
    assert (paint.colour, paint.coats, paint.ratio, paint.finish) == (Colour.BLUE, 1, 0.25, "matt")


@pytest.mark.parametrize(
    ("sent", "field"),
    [
        ({"Colour": "green"}, "Colour"),
        ({"Colour": 0}, "Colour"),  # the zero of another type is no zero here
        ({"Coats": ""}, "Coats"),
        ({"Shade": ""}, "Shade"),  # not declared ZeroIsDefault: "" is refused
    ],
)
def test_anything_else_is_refused_naming_the_field(sent, field):
    with pytest.raises(ValidationError) as raised:
        Paint.from_api(sent)
    assert [error["loc"] for error in raised.value.errors()] == [(field,)]


def test_an_undeclared_zero_is_a_value():
    assert Paint.from_api({"Layers": 0}).layers == 0


def test_the_marker_needs_a_type_with_a_zero():
    with pytest.raises(TypeError, match=r"Bad\.paint: ZeroIsDefault needs a string, number"):

        class Bad(Model):
            paint: ZeroIsDefault[Paint | None] = None


class Tray(Model):
    items: ZeroIsDefault[list[str] | None] = None
    sizes: ZeroIsDefault[dict[str, int] | None] = None
    open: ZeroIsDefault[bool | None] = None


def test_an_empty_list_map_or_false_is_not_set():
    """On a field whose default is None: Go's omitempty, read once (written as nothing)."""
    tray = Tray.from_api({"Items": [], "Sizes": {}, "Open": False})
    assert tray == Tray()
    assert tray.to_api() == {}
    full = Tray.from_api({"Items": ["a"], "Sizes": {"a": 0}, "Open": True})
    assert full.to_api() == {"Items": ["a"], "Sizes": {"a": 0}, "Open": True}
    # The zero of another type is no zero here: refused as the type is.
    with pytest.raises(ValidationError):
        Tray.from_api({"Items": 0})


def test_the_stores_own_json_is_read_as_it_was_written():
    # The store reads back what model_dump_json(by_alias=True, exclude_none=True) wrote, with
    # the OWN_JSON context: Go's key matching is skipped (exact keys, no null), and a zero that
    # replace() left in a ZeroIsDefault field comes back as written.
    paint = Paint(colour=Colour.BLUE, coats=3, finish="gloss").replace(coats=0)
    written = paint.model_dump_json(by_alias=True, exclude_none=True)
    assert Paint.model_validate_json(written, context=OWN_JSON) == paint
    assert Paint.model_validate_json(written).coats == 2  # the API's reading: zero is default
    # Not for anyone else's JSON: a key in another case is no field of the model there.
    assert Paint.model_validate_json('{"COLOUR": "blue"}', context=OWN_JSON).colour == Colour.RED
    assert Paint.model_validate_json('{"COLOUR": "blue"}').colour == Colour.BLUE
