"""The diff of `liqmon replay --compare`: matched by event id, compared field by field."""

from __future__ import annotations

import msgspec

from monitor.replay import compare, within_span
from monitor.schema import MarginEvent, MarginParameters


def event(event_id: str, **fields: object) -> MarginEvent:
    base: dict[str, object] = {
        "event_id": event_id,
        "type": "margin_call",
        "account": "a1",
        "state": "margin_call",
        "previous_state": "healthy",
        "equity": 100.0,
        "initial_margin": 120.0,
        "maintenance_margin": 60.0,
        "margin_ratio": 0.6,
        "trigger": "price",
        "trigger_ts": 1_000,
        "detected_ts": 2_000,
    }
    return MarginEvent(**{**base, **fields})  # type: ignore[arg-type]


def parameters(event_id: str, scale: float) -> MarginParameters:
    return MarginParameters(
        event_id=event_id,
        underlying="BTC",
        instruments=("BTCUSDT",),
        scale=scale,
        previous_scale=1.0,
        raw_scale=scale,
        stressed_scale=scale,
        target_scale=scale,
        volatility=0.8,
        reference_vol=0.5,
        announced_ts=1_000,
        ts=1_000,
        detected_ts=2_000,
    )


def test_identical_streams_compare_clean_whatever_their_order() -> None:
    published = [event("e1"), event("e2", account="a2"), parameters("p1", 1.5)]
    comparison = compare(published, list(reversed(published)))
    assert comparison.clean
    assert comparison.summary().startswith("identical: 3 replayed events, 3 published")


def test_a_missing_and_an_extra_event_are_named() -> None:
    comparison = compare([event("e1"), event("e2")], [event("e1"), event("e3")])
    assert not comparison.clean
    assert [e.event_id for e in comparison.missing] == ["e2"]
    assert [e.event_id for e in comparison.extra] == ["e3"]
    assert "1 missing, 1 extra, 0 different" in comparison.summary()
    assert comparison.details()[0].startswith("missing  e2 margin_call a1")


def test_a_different_field_is_reported_with_both_values() -> None:
    comparison = compare([event("e1", equity=100.0)], [event("e1", equity=100.0000001)])
    assert [(d.event_id, d.field, d.expected, d.replayed) for d in comparison.different] == [
        ("e1", "equity", 100.0, 100.0000001)
    ]
    assert "0 missing, 0 extra, 1 different" in comparison.summary()
    assert "differs  e1 equity: published 100.0, replayed 100.0000001" in comparison.details()


def test_a_field_present_on_one_side_only_differs() -> None:
    comparison = compare([event("e1")], [event("e1", adl_quantile=0.25)])
    assert [(d.field, d.expected, d.replayed) for d in comparison.different] == [
        ("adl_quantile", None, 0.25)
    ]


def test_a_parameter_event_is_compared_like_any_other() -> None:
    comparison = compare([parameters("p1", 1.5)], [parameters("p1", 1.25)])
    assert next((d.field, d.expected, d.replayed) for d in comparison.different) == (
        "scale",
        1.5,
        1.25,
    )


def test_ignored_fields_are_not_compared() -> None:
    comparison = compare(
        [event("e1", detected_ts=1)], [event("e1", detected_ts=2)], ["detected_ts"]
    )
    assert comparison.clean


def test_a_published_repeat_counts_once() -> None:
    comparison = compare([event("e1"), event("e1")], [event("e1")])
    assert comparison.clean
    assert comparison.repeats == 1
    assert "(1 published repeats ignored)" in comparison.summary()


def test_within_span_keeps_the_events_detected_between_two_clocks() -> None:
    found = within_span([event("e1", detected_ts=5), event("e2", detected_ts=9)], 6, 9)
    assert [e.event_id for e in found] == ["e2"]


def test_events_round_trip_through_json_unchanged() -> None:
    original = event("e1", adl_quantile=0.5)
    again = msgspec.json.decode(msgspec.json.encode(original), type=MarginEvent)
    assert compare([original], [again]).clean


def test_a_published_copy_that_differs_from_the_first_is_reported() -> None:
    comparison = compare([event("e1"), event("e1", equity=1.0)], [event("e1")])
    assert [(d.field, d.expected, d.replayed) for d in comparison.different] == [
        ("equity", 1.0, 100.0)
    ]
    assert not comparison.clean
