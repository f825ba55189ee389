"""ArmFacts: coverage, absence, staleness, slicing and the JSON it travels as (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from model.arm_facts import (
    CONNECTED_REGISTRIES,
    MAX_AGE,
    SCOPE_MAPS,
    TOKENS,
    ArmFacts,
    NotCovered,
)

REG = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/r"
AT = datetime(2026, 12, 3, 14, 0, 5, tzinfo=UTC)


def _token(name: str) -> dict[str, object]:
    return {
        "name": name,
        "properties": {
            "credentials": {
                "passwords": [
                    {"name": "password1", "expiry": "2027-01-01T00:00:00Z", "value": "s3cret"}
                ]
            }
        },
    }


def _facts() -> ArmFacts:
    return ArmFacts.from_lists(
        REG,
        AT,
        {
            CONNECTED_REGISTRIES: [{"name": "plant01"}, {"name": "plant02"}],
            TOKENS: [_token("plant01"), _token("plant01-client"), _token("plant02")],
        },
    )


def test_get_says_absent_only_for_a_covered_kind() -> None:
    facts = _facts()
    assert facts.get(CONNECTED_REGISTRIES, "PLANT01") == {"name": "plant01"}  # case-insensitive
    assert facts.get(CONNECTED_REGISTRIES, "plant09") is None  # listed, not there: absent
    assert facts.covers(TOKENS, "anything")
    with pytest.raises(NotCovered):
        facts.get(SCOPE_MAPS, "plant01")  # scope maps were not read: unknown, not absent
    assert not facts.covers(SCOPE_MAPS, "plant01")


def test_stale_or_future_facts_are_not_fresh() -> None:
    facts = _facts()
    assert facts.is_fresh(AT + MAX_AGE)
    assert not facts.is_fresh(AT + MAX_AGE + timedelta(seconds=1))
    assert not facts.is_fresh(AT - timedelta(minutes=5))  # from another clock's future
    assert facts.usable_for(REG.upper(), AT)
    assert not facts.usable_for(REG.replace("registries/r", "registries/other"), AT)


def test_a_slice_covers_only_its_sites_names() -> None:
    part = _facts().for_sites(["plant01"], ["plant01-client"])
    assert part.get(CONNECTED_REGISTRIES, "plant01") == {"name": "plant01"}
    assert part.get(TOKENS, "plant01-client") is not None
    assert not part.covers(CONNECTED_REGISTRIES, "plant02")  # another site's: not "absent"
    with pytest.raises(NotCovered):
        part.get(TOKENS, "plant02")
    assert not part.covers(SCOPE_MAPS, "plant01")  # a kind never read stays uncovered
    # slicing a slice never widens it
    assert not part.for_sites(["plant02"], []).covers(CONNECTED_REGISTRIES, "plant02")
    assert part.resources[CONNECTED_REGISTRIES].keys() == {"plant01"}


def test_json_round_trip_is_plain_json_without_password_values() -> None:
    facts = _facts().for_sites(["plant01"], ["plant01-client"])
    text = json.dumps(facts.to_json())  # plain JSON: a flow-run parameter
    back = ArmFacts.from_json(json.loads(text))
    assert back == facts
    assert back.read_at == AT and back.describe().endswith("14:00:05 UTC")
    assert "s3cret" not in text and '"value"' not in text
    whole = json.dumps(_facts().to_json())
    assert ArmFacts.from_json(json.loads(whole)).covers(TOKENS, "new-token")


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"format": 2},
        {"format": 1, "registry_id": REG, "read_at": "2026-12-03T14:00:05", "covered": {}},
        {"format": 1, "registry_id": REG, "read_at": AT.isoformat(), "covered": {"nope": None}},
        {"format": 1, "registry_id": REG, "read_at": AT.isoformat(), "covered": 3},
    ],
)
def test_malformed_json_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ArmFacts.from_json(bad)


def test_from_lists_refuses_unknown_kinds_and_naive_times() -> None:
    with pytest.raises(ValueError):
        ArmFacts.from_lists(REG, AT, {"registries": []})
    with pytest.raises(ValueError):
        ArmFacts.from_lists(REG, AT.replace(tzinfo=None), {TOKENS: []})
