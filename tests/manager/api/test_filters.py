from __future__ import annotations

import pytest

from swarmlet.errors import InvalidSpec
from swarmlet.manager.api.filters import Filters, match_labels, match_prefix


def test_parse_reads_the_current_and_the_old_form():
    assert Filters.parse('{"name": {"web": true, "db": true}}').get("name") == ["web", "db"]
    assert Filters.parse('{"name": ["web", "db"]}').get("name") == ["web", "db"]
    assert Filters.parse("").values == {}
    assert Filters.parse(None).get("name") == []


@pytest.mark.parametrize(
    "raw",
    # The last two found by test_fuzz.py: nesting deeper than Python's recursion limit was a 500.
    ["{nope", "[1]", '{"name": "web"}', '{"name": [1]}', "[" * 1100, '{"name": ' * 2000],
)
def test_parse_refuses_what_is_not_a_filter(raw):
    with pytest.raises(InvalidSpec, match="invalid filter"):
        Filters.parse(raw)


def test_validate_names_the_unknown_filter():
    filters = Filters.parse('{"name": ["a"], "colour": ["red"]}')
    with pytest.raises(InvalidSpec, match="invalid filter 'colour'"):
        filters.validate(["name"])
    filters.validate(["name", "colour"])


def test_prefixes_match_any_and_none_matches_everything():
    assert match_prefix("web-1", ["db", "we"])
    assert not match_prefix("web-1", ["db"])
    assert match_prefix("web-1", [])


def test_labels_match_every_expression():
    labels = {"tier": "front", "env": ""}
    assert match_labels(labels, ["tier"])
    assert match_labels(labels, ["tier=front", "env"])
    assert not match_labels(labels, ["tier=back"])
    assert not match_labels(labels, ["tier", "zone"])
    assert match_labels(labels, [])
