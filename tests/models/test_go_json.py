"""Every model reads keys as Go's decoder matches them, and writes what Go's omitempty writes."""

from __future__ import annotations

import pytest

from swarmlet.models import Model, OmitEmpty, OmitUnset, Unset, ZeroIsDefault


class Inner(Model):
    size: int = 0


class Box(Model):
    node_id: str = ""
    inner: Inner | None = None
    labels: dict[str, str] = {}
    tags: OmitEmpty[list[str]] = []
    note: OmitEmpty[str] = ""
    flag: OmitEmpty[bool | None] = None
    count: OmitEmpty[int] = 0


class Policy(Model):
    delay: OmitUnset[int] = Unset(5)
    monitor: OmitUnset[ZeroIsDefault[int]] = Unset(7)
    attempts: int = 0


@pytest.mark.parametrize(
    "sent",
    [
        {"NodeID": "a", "Inner": {"Size": 2}},
        {"nodeID": "a", "inner": {"size": 2}},
        {"NODEID": "a", "iNnEr": {"SIZE": 2}},
        {"nodeid": "a", "Inner": {"\u017fize": 2}},  # Go folds the long s as s
        {"node_id": "a", "inner": {"size": 2}},  # the Python names
    ],
)
def test_keys_match_in_any_case(sent):
    box = Box.from_api(sent)
    assert (box.node_id, box.inner) == ("a", Inner(size=2))
    assert box.model_extra == {}


def test_the_last_key_for_a_field_wins_even_over_an_exact_match():
    assert Box.from_api({"NodeID": "a", "nodeid": "b"}).node_id == "b"
    assert Box.from_api({"nodeid": "b", "NodeID": "a"}).node_id == "a"


def test_a_key_for_no_field_is_kept_as_it_came():
    box = Box.from_api({"NodeID": "a", "Shape": "round"})
    assert box.model_extra == {"Shape": "round"}
    assert box.to_api()["Shape"] == "round"


def test_a_map_keeps_its_keys():
    assert Box.from_api({"labels": {"Node_ID": "x"}}).labels == {"Node_ID": "x"}


def test_omitempty_leaves_out_empty_values_only():
    assert Box().to_api() == {"NodeID": "", "Labels": {}}
    full = Box(tags=["t"], note="n", flag=False, count=2)
    # flag is OmitEmpty: False is Go's zero value, left out like 0 and "".
    assert full.to_api() == {"NodeID": "", "Labels": {}, "Tags": ["t"], "Note": "n", "Count": 2}
    assert Box(flag=True).to_api()["Flag"] is True


def test_omitempty_applies_to_json_text_too():
    assert Box(tags=[]).to_api_json() == '{"NodeID":"","Labels":{}}'


def test_omit_unset_writes_a_field_once_set():
    assert Policy.from_api({}).to_api() == {"Attempts": 0}
    assert Policy.from_api({}).delay == 5  # read with its default
    assert Policy.from_api({}).delay + 1 == 6  # a number as any other
    # Set to the same number as the default: written.
    assert Policy.from_api({"Delay": 5}).to_api() == {"Delay": 5, "Attempts": 0}
    assert Policy.from_api({"Delay": 0, "Monitor": 9}).to_api() == {
        "Delay": 0,
        "Monitor": 9,
        "Attempts": 0,
    }
    # A zero that means "not set" (ZeroIsDefault) is not written either.
    assert Policy.from_api({"Monitor": 0}).to_api() == {"Attempts": 0}
    assert Policy.from_api({}).replace(delay=1).to_api() == {"Delay": 1, "Attempts": 0}


def test_omit_unset_needs_an_unset_default():
    with pytest.raises(TypeError, match=r"Bad\.delay: an OmitUnset field's default is Unset\(n\)"):

        class Bad(Model):
            delay: OmitUnset[int] = 5


class Stored(Model):
    _not_in_api = {"secret"}

    name: str = ""
    secret: str = ""


def test_fields_not_in_the_api_are_kept_but_not_shown():
    stored = Stored(name="n", secret="s")
    assert stored.to_api() == {"Name": "n"}
    assert stored.to_api_json() == '{"Name":"n"}'
    assert stored.model_dump(by_alias=True)["Secret"] == "s"  # what the store persists
