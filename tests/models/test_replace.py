"""``Model.replace``: what ``model_copy(update=...)`` makes, without copying what it shares."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from swarmlet.models import Task, TaskState, TaskStatus, Version

TASK = Task(
    id="t1",
    service_id="s1",
    status=TaskStatus(state=TaskState.NEW),
    Unknown={"kept": True},  # a field swarmlet does not know, kept as it came
)


@given(
    node_id=st.one_of(st.none(), st.text(max_size=8)),
    index=st.integers(min_value=0, max_value=10**6),
    slot=st.one_of(st.none(), st.integers(min_value=1, max_value=100)),
)
def test_replace_makes_what_model_copy_makes(node_id: str | None, index: int, slot: int | None):
    changes = {"node_id": node_id, "version": Version(index=index), "slot": slot}
    copied = TASK.replace(**changes)
    expected = TASK.model_copy(update=changes)
    assert copied == expected
    assert copied.model_fields_set == expected.model_fields_set
    assert copied.model_extra == {"Unknown": {"kept": True}}
    assert copied.to_api() == expected.to_api()
    assert TASK.node_id is None
    assert TASK.version == Version()


def test_a_copy_is_as_frozen_as_the_original():
    copied = TASK.replace(node_id="n1")
    with pytest.raises(ValidationError):
        copied.node_id = "n2"  # type: ignore[misc]
    assert TASK.replace(service_id="s2").model_fields_set == TASK.model_fields_set
    assert "node_id" in copied.model_fields_set
    assert "node_id" not in TASK.model_fields_set
