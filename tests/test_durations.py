from __future__ import annotations

import math

import pytest

from ember.durations import parse_duration, parse_keep_alive
from ember.errors import BadRequest


@pytest.mark.parametrize(("value", "seconds"), [
    (300, 300.0), (2.5, 2.5), (0, 0.0), (-1, math.inf), ("5m", 300.0), ("1h30m", 5400.0), ("300ms", 0.3),
    ("0", 0.0), ("-1m", math.inf), (None, None),
])
def test_keep_alive_forms(value: object, seconds: float | None) -> None:
    assert parse_keep_alive(value) == seconds


@pytest.mark.parametrize("value", ["-1", "5", "5 minutes", "m", True, [1]])
def test_bad_keep_alive_is_a_400(value: object) -> None:
    with pytest.raises(BadRequest):
        parse_keep_alive(value)


def test_environment_form_accepts_plain_seconds() -> None:
    assert parse_duration("600") == 600.0
    assert parse_duration("-1") == math.inf
    assert parse_duration("10m") == 600.0


@pytest.mark.parametrize(("text", "seconds"), [("30d", 30 * 86400.0), ("1d12h", 1.5 * 86400), ("0.5d", 43200.0)])
def test_environment_form_accepts_days(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["d", "1d-5m", "1dd", "1d12", "-1d"])
def test_bad_day_forms_are_a_400(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_duration(text)
