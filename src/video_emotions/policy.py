"""The policy gate: which analyses this deployment may run, read from ``VE_POLICY_FILE``.

The file is TOML, a list of rules; the first rule that matches an interview's context and region
decides::

    [[rule]]
    context = "hiring"        # or "*"
    region = "EU"             # or "*"
    action = "prohibit"       # "prohibit" | "require_consent" | "allow"
    reason = "EU AI Act Art. 5(1)(f): emotion recognition in the workplace"

Matching ignores case; ``*`` matches anything, an interview without that fact included: an interview
with no context (or no region) recorded matches only the rules with ``*`` there. When no rule
matches, the analysis is allowed. Every rule needs all four fields; a field the rules do not know, an
unknown action, a missing reason or a name no interview can carry stops the service at start.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from video_emotions.errors import VideoEmotionsError
from video_emotions.facts import is_label

logger = logging.getLogger(__name__)

Action = Literal["prohibit", "require_consent", "allow"]
ACTIONS: tuple[str, ...] = get_args(Action)
RULE_FIELDS = ("context", "region", "action", "reason")
WILDCARD = "*"


class PolicyError(VideoEmotionsError):
    """The policy file cannot be read or a rule in it is wrong: the service does not start."""


@dataclass(frozen=True)
class Rule:
    number: int  # 1 for the file's first [[rule]]
    context: str
    region: str
    action: Action
    reason: str

    def matches(self, context: str | None, region: str | None) -> bool:
        return _field_matches(self.context, context) and _field_matches(self.region, region)


def _field_matches(pattern: str, value: str | None) -> bool:
    if pattern == WILDCARD:
        return True
    return value is not None and pattern.casefold() == value.strip().casefold()


@dataclass(frozen=True)
class Decision:
    """What the policy says of one request: the deciding rule's action and reason (``allow`` with no
    rule when none matched), and whether it is refused given the consent on record."""

    action: Action
    reason: str | None
    rule_number: int | None
    consent: bool = False

    @property
    def refused(self) -> bool:
        return self.action == "prohibit" or (self.action == "require_consent" and not self.consent)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    source: str = "(inline)"

    def decide(self, context: str | None, region: str | None, consent: bool) -> Decision:
        """The first rule matching ``context`` and ``region`` decides; none matching allows."""
        for rule in self.rules:
            if rule.matches(context, region):
                return Decision(rule.action, rule.reason, rule.number, consent)
        return Decision("allow", None, None, consent)

    def describe(self) -> str:
        count = len(self.rules)
        return f"policy {self.source}: {count} rule{'' if count == 1 else 's'}"


def parse_policy(text: str, *, source: str = "(inline)") -> Policy:
    """The rules of a policy file's text; PolicyError names the rule (1 for the first) and field."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy {source} is not valid TOML: {exc}") from exc
    extra = sorted(set(document) - {"rule"})
    if extra:
        raise PolicyError(
            f"policy {source}: unknown top-level key {extra[0]!r}: the file holds [[rule]] tables only"
        )
    raw = document.get("rule")
    if raw is None:
        raise PolicyError(f"policy {source} has no rules: write each as a [[rule]] table")
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise PolicyError(f"policy {source}: 'rule' must be a list of tables, each written [[rule]]")
    return Policy(tuple(_rule(number, item, source) for number, item in enumerate(raw, start=1)), source)


def _rule(number: int, item: dict[str, Any], source: str) -> Rule:
    where = f"policy {source}, rule {number}"
    unknown = sorted(set(item) - set(RULE_FIELDS))
    if unknown:
        raise PolicyError(f"{where}: unknown field {unknown[0]!r} (a rule has {', '.join(RULE_FIELDS)})")
    for name in RULE_FIELDS:
        if name not in item:
            raise PolicyError(
                f"{where}: no {name!r}" + (' (use "*" for any)' if name in ("context", "region") else "")
            )
        if not isinstance(item[name], str):
            raise PolicyError(f"{where}: {name} must be a string, got {item[name]!r}")
    for name in ("context", "region"):
        value = item[name].strip()
        if value != WILDCARD and not is_label(value):
            raise PolicyError(
                f'{where}: {name} {value!r} is neither "*" nor a name an interview can carry '
                "(letters, digits and . _ : / -, e.g. hiring or EU)"
            )
    action = item["action"].strip()
    if action not in ACTIONS:
        raise PolicyError(f"{where}: action {action!r} is not one of {', '.join(ACTIONS)}")
    reason = item["reason"].strip()
    if not reason:
        raise PolicyError(f"{where}: the reason is empty: say why (the law or decision it follows)")
    return Rule(number, item["context"].strip(), item["region"].strip(), action, reason)  # type: ignore[arg-type]


def load_policy(path: Path | None) -> Policy | None:
    """The policy at ``path`` (VE_POLICY_FILE); None when no file is set. PolicyError when it cannot be
    read or a rule is wrong."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PolicyError(f"policy file {path} does not exist (VE_POLICY_FILE)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"policy file {path} cannot be read (VE_POLICY_FILE): {exc}") from exc
    return parse_policy(text, source=str(path))


def log_policy(policy: Policy | None) -> None:
    """The start-up line that says which policy the service follows, or that none is set."""
    if policy is None:
        logger.info("no policy is set (VE_POLICY_FILE): every analysis is allowed")
    else:
        logger.info("%s", policy.describe())
