from __future__ import annotations

from datetime import timedelta

import pytest

from swarmlet.daemon.duration import parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", timedelta(hours=1)),
        ("90s", timedelta(seconds=90)),
        ("10m", timedelta(minutes=10)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("45s", timedelta(seconds=45)),
        ("500ms", timedelta(milliseconds=500)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("2h45m30.5s", timedelta(hours=2, minutes=45, seconds=30.5)),
        (".5s", timedelta(milliseconds=500)),
        ("1.h", timedelta(hours=1)),
        ("1m1m", timedelta(minutes=2)),  # Go adds repeated units up too
        ("250us", timedelta(microseconds=250)),
        ("250\u00b5s", timedelta(microseconds=250)),
        ("1500ns", timedelta(microseconds=1)),  # below a microsecond is truncated
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
    ],
)
def test_go_durations_are_read(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "1", "h", "1d", "1w", "1H", "1h 30m", " 1h", "-1h", "+1h", "1h-30m", ".s", "1..5s",
     "1e3s", "0.0", "soon", "\uff11h"],
)  # fmt: skip
def test_anything_else_is_refused_with_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid duration .*such as 1h30m, 45s or 500ms"):
        parse_duration(text)


def test_a_duration_timedelta_cannot_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="too long"):
        parse_duration("99999999999999h")
