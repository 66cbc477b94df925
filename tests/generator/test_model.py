"""Burn-rate arithmetic, durations and `le` formatting of the generator's domain model."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.utils import floatToGoString

from obskit import semconv
from obskit.generator.model import (
    BURN_RATE_ROWS,
    SLO,
    Duration,
    days,
    format_decimal,
    format_le,
    hours,
    minutes,
)


def _slo(objective: str, window: Duration) -> SLO:
    return SLO("x", Decimal(objective), window, "", "availability", None, ())


@pytest.mark.parametrize(
    ("window", "factors"),
    [
        (days(30), ["14.4", "6", "3", "1"]),
        (days(28), ["13.44", "5.6", "2.8", "0.933333333333"]),
    ],
)
def test_burn_rate_factors_follow_the_budget_based_convention(
    window: Duration, factors: list[str]
) -> None:
    """factor = budget_fraction * window_hours / long_window_hours (SRE Workbook table)."""
    assert [format_decimal(r.factor(window)) for r in BURN_RATE_ROWS] == factors


@pytest.mark.parametrize(
    ("objective", "window", "thresholds"),
    [
        ("99.9", days(30), ["0.0144", "0.006", "0.003", "0.001"]),
        ("99.5", days(30), ["0.072", "0.03", "0.015", "0.005"]),
        ("95", days(30), ["0.72", "0.3", "0.15", "0.05"]),
        ("99.9", days(28), ["0.01344", "0.0056", "0.0028", "0.000933333333333"]),
        ("99.5", days(28), ["0.0672", "0.028", "0.014", "0.00466666666667"]),
        ("95", days(28), ["0.672", "0.28", "0.14", "0.0466666666667"]),
    ],
)
def test_error_ratio_thresholds_scale_with_objective_and_window(
    objective: str, window: Duration, thresholds: list[str]
) -> None:
    """The alert fires above factor * (1 - objective): exact decimal arithmetic, no float drift."""
    slo = _slo(objective, window)
    got = [format_decimal(slo.factor(row) * slo.budget) for row in BURN_RATE_ROWS]
    assert got == thresholds


def test_rows_needing_more_than_100_percent_errors_are_marked_unable_to_fire() -> None:
    """At 90% over 30d the 14.4x page row would need a 144% error ratio: it cannot fire."""
    slo = _slo("90", days(30))
    assert [slo.can_fire(r) for r in BURN_RATE_ROWS] == [False, True, True, True]
    assert all(_slo("99.9", days(30)).can_fire(r) for r in BURN_RATE_ROWS)


def test_short_windows_are_one_twelfth_of_long_windows() -> None:
    assert all(r.short.seconds * 12 == r.long.seconds for r in BURN_RATE_ROWS)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("5m", "5m"), ("60m", "1h"), ("30d", "30d"), ("4w", "28d"), ("720h", "30d"), ("1h", "1h")],
)
def test_durations_parse_and_print_in_prometheus_notation(text: str, canonical: str) -> None:
    assert str(Duration.parse(text)) == canonical


@pytest.mark.parametrize("text", ["", "30", "d", "0d", "1.5h", "30x", "-1d", "1d2h"])
def test_unparseable_durations_are_rejected_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"m \(minutes\), h \(hours\), d \(days\)"):
        Duration.parse(text)


def test_window_helpers_agree_with_parsing() -> None:
    assert minutes(30) == Duration.parse("30m")
    assert hours(6) == Duration.parse("6h")
    assert days(3) == Duration.parse("3d")


def test_le_is_formatted_exactly_as_prometheus_client_writes_it() -> None:
    assert [format_le(b) for b in semconv.DEFAULT_BUCKETS] == [
        floatToGoString(b) for b in semconv.DEFAULT_BUCKETS
    ]
    assert (format_le(0.25), format_le(1), format_le(10)) == ("0.25", "1.0", "10.0")


@given(st.floats(min_value=1e-6, max_value=999_999, allow_nan=False))
def test_le_formatting_matches_prometheus_client_over_the_accepted_bucket_range(
    value: float,
) -> None:
    assert format_le(value) == floatToGoString(value)
