"""The policy file (VE_POLICY_FILE): parsing, first match wins, wildcards, errors; and the facts' checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from video_emotions.api.checks import policy_refusal
from video_emotions.config import Settings
from video_emotions.errors import InputError
from video_emotions.facts import check_facts, facts_document
from video_emotions.policy import Decision, PolicyError, load_policy, parse_policy

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "policy.example.toml"

RULES = """
[[rule]]
context = "hiring"
region = "EU"
action = "prohibit"
reason = "EU AI Act Art. 5(1)(f)"

[[rule]]
context = "hiring"
region = "*"
action = "require_consent"
reason = "our decision"

[[rule]]
context = "*"
region = "EU"
action = "allow"
reason = "everything else in the EU"

[[rule]]
context = "*"
region = "*"
action = "prohibit"
reason = "not approved"
"""


def rule(**fields: str) -> str:
    values = {"context": "hiring", "region": "EU", "action": "prohibit", "reason": "why"} | fields
    return "[[rule]]\n" + "".join(f'{key} = "{value}"\n' for key, value in values.items() if value != "-")


def test_rules_are_read_in_order_and_numbered_from_one() -> None:
    policy = parse_policy(RULES, source="p.toml")
    assert [(r.number, r.context, r.region, r.action) for r in policy.rules] == [
        (1, "hiring", "EU", "prohibit"),
        (2, "hiring", "*", "require_consent"),
        (3, "*", "EU", "allow"),
        (4, "*", "*", "prohibit"),
    ]
    assert policy.describe() == "policy p.toml: 4 rules"


def test_the_first_matching_rule_decides() -> None:
    policy = parse_policy(RULES)
    assert policy.decide("hiring", "EU", consent=True) == Decision(
        "prohibit", "EU AI Act Art. 5(1)(f)", 1, True
    )
    assert policy.decide("hiring", "US", consent=False) == Decision(
        "require_consent", "our decision", 2, False
    )
    assert policy.decide("coaching", "EU", consent=False).rule_number == 3
    assert policy.decide("coaching", "US", consent=False).rule_number == 4


def test_matching_ignores_case_and_a_wildcard_matches_anything() -> None:
    policy = parse_policy(RULES)
    assert policy.decide("HIRING", "eu", consent=False).rule_number == 1
    assert policy.decide("Hiring", "Us", consent=False).rule_number == 2


def test_an_interview_without_context_or_region_matches_only_wildcard_rules() -> None:
    policy = parse_policy(RULES)
    assert policy.decide(None, "EU", consent=False).rule_number == 3  # not rule 1: context unknown
    assert policy.decide("hiring", None, consent=False).rule_number == 2  # region "*"
    assert policy.decide(None, None, consent=False).rule_number == 4


def test_no_rule_matching_allows() -> None:
    policy = parse_policy(rule())
    decision = policy.decide("coaching", "EU", consent=False)
    assert decision == Decision("allow", None, None, False) and not decision.refused


def test_refused_says_what_consent_changes() -> None:
    assert Decision("prohibit", "r", 1, consent=True).refused
    assert Decision("require_consent", "r", 1, consent=False).refused
    assert not Decision("require_consent", "r", 1, consent=True).refused
    assert not Decision("allow", "r", 1, consent=False).refused


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rule]\ncontext = 1", "is not valid TOML"),
        ("", "has no rules: write each as a [[rule]] table"),
        ('[rule]\ncontext = "hiring"', "'rule' must be a list of tables"),
        ("rules = []\n" + rule(), "unknown top-level key 'rules'"),
        (rule(action="forbid"), "rule 1: action 'forbid' is not one of prohibit, require_consent, allow"),
        (rule() + rule(reason="-"), "rule 2: no 'reason'"),
        (rule(reason="  "), "rule 1: the reason is empty"),
        (rule(context="-"), "rule 1: no 'context' (use \"*\" for any)"),
        (rule(region="-"), "rule 1: no 'region'"),
        (rule(action="-"), "rule 1: no 'action'"),
        (rule(contxt="hiring"), "rule 1: unknown field 'contxt'"),
        (rule(region="E U"), "rule 1: region 'E U' is neither \"*\" nor a name"),
        (
            '[[rule]]\ncontext = "hiring"\nregion = ["EU"]\naction = "allow"\nreason = "r"',
            "rule 1: region must be a string",
        ),
    ],
)
def test_a_wrong_policy_is_refused_naming_the_rule_and_field(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="p.toml")
    assert message in str(caught.value) and "p.toml" in str(caught.value)


def test_load_policy(tmp_path: Path) -> None:
    assert load_policy(None) is None
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "missing.toml")
    path = tmp_path / "policy.toml"
    path.write_text(rule() + rule(context="*", region="*", action="allow"))
    policy = load_policy(path)
    assert policy is not None and len(policy.rules) == 2 and policy.source == str(path)


def test_the_setting_is_ve_policy_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VE_POLICY_FILE", str(tmp_path / "p.toml"))
    assert Settings().policy_file == tmp_path / "p.toml"
    monkeypatch.setenv("VE_POLICY_FILE", "")
    assert Settings().policy_file is None


def test_the_example_policy_prohibits_hiring_in_the_eu() -> None:
    policy = load_policy(EXAMPLE)
    assert policy is not None
    eu = policy.decide("hiring", "eu", consent=True)
    assert eu.action == "prohibit" and eu.refused and "Art. 5(1)(f)" in (eu.reason or "")
    assert "2025-02-02" in (eu.reason or "")
    assert policy.decide("coaching", "US", consent=False).refused
    assert not policy.decide("coaching", "US", consent=True).refused
    assert not policy.decide("hiring", "US", consent=False).refused


def test_the_gate_says_which_rule_refuses_and_how_to_record_consent() -> None:
    policy = parse_policy(RULES)
    prohibited = policy_refusal(policy, 7, {"context": "hiring", "region": "EU", "consent": True})
    assert prohibited is not None and prohibited.rule_number == 1 and prohibited.action == "prohibit"
    assert "interview 7 (context hiring, region EU) is refused by policy rule 1: EU AI Act" in str(prohibited)
    missing = policy_refusal(policy, 7, {"context": "hiring", "region": "US"})
    assert missing is not None and missing.action == "require_consent"
    assert "requires the candidate's recorded consent" in str(missing)
    assert "none is recorded: set it with PUT /v1/interviews/7/facts" in str(missing)
    refused = policy_refusal(policy, 7, {"context": "hiring", "region": "US", "consent": False})
    assert refused is not None and "recorded as refused" in str(refused)
    assert policy_refusal(policy, 7, {"context": "hiring", "region": "US", "consent": True}) is None
    assert policy_refusal(None, 7, {"context": "hiring", "region": "EU"}) is None
    no_facts = policy_refusal(policy, 7, None)  # only the "*" rules: rule 4
    assert no_facts is not None and no_facts.rule_number == 4
    assert "context not set, region not set" in str(no_facts)


# The facts' checks ----------------------------------------------------------------------------------


def test_facts_are_checked_and_normalised() -> None:
    now = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    paris = timezone(timedelta(hours=1))
    checked = check_facts(
        {
            "context": " hiring ",
            "region": "EU",
            "purpose": "  a job interview ",
            "recorded_at": datetime(2026, 12, 1, 10, 0, tzinfo=paris),
            "consent": True,
            "notice": "",
        },
        now=now,
    )
    assert checked == {
        "context": "hiring",
        "region": "EU",
        "purpose": "a job interview",
        "recorded_at": datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
        "consent": True,
        "notice": None,
        "consent_at": now,  # consent set without a time: now
    }
    assert check_facts({"consent": None}) == {"consent": None}  # clearing it sets no time
    assert check_facts({"recorded_at": datetime(2026, 1, 1)})["recorded_at"].tzinfo is UTC


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"context": "*"}, "context '*' is not a name"),
        ({"region": "E U"}, "region 'E U' is not a name"),
        ({"region": ""}, "region '' is not a name"),
        ({"context": "x" * 65}, "is not a name"),
        ({"purpose": "a\x00b"}, "purpose holds a NUL character"),
        ({"notice": "n" * 20001}, "notice is over 20000 characters"),
        ({"consent": "yes"}, "consent must be true or false"),
        ({"recorded_at": "yesterday"}, "recorded_at must be a date and time"),
        ({"consent_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))}, "outside the times UTC"),
        ({"colour": "red"}, "unknown interview facts ['colour']"),
    ],
)
def test_wrong_facts_are_refused_naming_the_fact(values: dict[str, object], message: str) -> None:
    with pytest.raises(InputError) as caught:
        check_facts(values)
    assert message in str(caught.value)


def test_the_facts_document_has_every_fact() -> None:
    empty = facts_document(3, None)
    assert empty == {
        "interview_id": 3,
        **dict.fromkeys(
            ("context", "region", "purpose", "recorded_by", "recorded_at", "notice", "consent"), None
        ),
        "consent_at": None,
        "consent_by": None,
        "updated_at": None,
    }
    naive = facts_document(3, {"recorded_at": datetime(2026, 12, 1, 9, 0), "consent": False})
    assert naive["recorded_at"] == "2026-12-01T09:00:00+00:00" and naive["consent"] is False
