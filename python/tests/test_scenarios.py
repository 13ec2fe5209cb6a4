"""The Python runner of the shared conformance scenarios (tests/scenarios/*.json).

The format, every op and every expectation are specified in tests/scenarios/README.md; the
Rust, C and Node runners follow the same text, so the four languages give identical answers.
Each scenario drives the package's public API, exactly as a user's code would.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import nanu
from conftest import REPO, new_vault, utc

SCENARIOS = REPO / "tests" / "scenarios"
FILES = sorted(SCENARIOS.glob("*.json"))

COMMON = {"op", "at", "expect", "expect_error", "note"}

# What each op may carry besides the common fields, and whether it defines `expect`.
OPS: dict[str, tuple[set[str], bool]] = {
    "mint": ({"spec", "as"}, False),
    "verify": ({"key", "secret", "request", "as_hold"}, True),
    "charge": ({"key", "usage"}, True),
    "release": ({"hold"}, True),
    "rotate": ({"key", "grace_ms", "as"}, False),
    "revoke": ({"key"}, False),
    "revoke_owner": ({"owner"}, True),
    "update": ({"key", "patch"}, False),
    "set_owner_policy": ({"owner", "limits"}, False),
    "set_default_owner_policy": ({"limits"}, False),
    "set_price": ({"model", "price"}, False),
    "remaining": ({"key"}, True),
    "tick": (set(), False),
    "usage": ({"query"}, True),
}

UNITS = ("requests", "tokens", "input_tokens", "output_tokens", "cost")


class ScenarioError(AssertionError):
    """A scenario that is malformed or does not give its answers."""


def only(what: str, fields: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ScenarioError(f"unknown field {unknown[0]!r} in {what}")


def same(field: str, expected: object, found: object) -> None:
    # bool is an int in Python: compare types too, so that `true` never equals 1.
    if expected != found or type(expected) is not type(found) and None not in (expected, found):
        raise ScenarioError(f"{field}: expected {expected!r}, found {found!r}")


def same_instant(field: str, expected: object, found: datetime | None) -> None:
    want = None if expected is None else utc(str(expected))
    if want != found:
        raise ScenarioError(f"{field}: expected {expected!r}, found {found!r}")


def times(fields: dict[str, Any], *names: str) -> dict[str, Any]:
    """The JSON form's RFC 3339 times as aware datetimes, the package's time type."""
    out = dict(fields)
    for name in names:
        if isinstance(out.get(name), str):
            out[name] = utc(out[name])
    return out


class Run:
    def __init__(self, path: Path) -> None:
        self.vault = new_vault(path)
        self.at = utc("2025-01-01T00:00:00Z")
        self.labels: dict[str, tuple[str, str]] = {}
        self.holds: dict[str, int | None] = {}

    def label(self, step: dict[str, Any]) -> tuple[str, str]:
        name = step.get("key")
        if name not in self.labels:
            raise ScenarioError(f"unknown label {name!r}")
        return self.labels[name]

    def new_label(self, name: object) -> str:
        if not isinstance(name, str):
            raise ScenarioError("a label must be text")
        if name in self.labels:
            raise ScenarioError(f"label {name!r} used twice")
        return name

    def hold(self, name: object) -> int | None:
        if not isinstance(name, str) or name not in self.holds:
            raise ScenarioError(f"unknown hold name {name!r}")
        return self.holds[name]

    def step(self, op: str, step: dict[str, Any]) -> Any:
        v, at = self.vault, self.at
        if op == "mint":
            name = self.new_label(step.get("as"))
            spec = times(step["spec"], "expires_at")
            minted = v.mint(**spec, at=at)
            self.labels[name] = (minted.key_id, minted.secret)
            return None
        if op == "verify":
            if ("key" in step) == ("secret" in step):
                raise ScenarioError('verify needs exactly one of "key" and "secret"')
            secret = self.label(step)[1] if "key" in step else step["secret"]
            request = step.get("request", {})
            only("request", request, {"ip", "scope", "model", "env", "hold"})
            verdict = v.verify(secret, **request, at=at)
            if "as_hold" in step:
                name = step["as_hold"]
                if name in self.holds:
                    raise ScenarioError(f"hold name {name!r} used twice")
                self.holds[name] = verdict.hold_id
            return verdict
        if op == "charge":
            key_id = self.label(step)[0]
            usage = dict(step.get("usage", {}))
            hold_id = self.hold(usage.pop("hold")) if "hold" in usage else None
            return v.charge(key_id, **usage, hold_id=hold_id, at=at)
        if op == "release":
            hold_id = self.hold(step.get("hold"))
            return False if hold_id is None else v.release(hold_id, at=at)
        if op == "rotate":
            key_id = self.label(step)[0]
            name = self.new_label(step.get("as"))
            minted = v.rotate(key_id, grace=step.get("grace_ms", 0), at=at)
            self.labels[name] = (key_id, minted.secret)
            return None
        if op == "revoke":
            v.revoke(self.label(step)[0], at=at)
            return None
        if op == "revoke_owner":
            return v.revoke_owner(step["owner"], at=at)
        if op == "update":
            patch = times(step["patch"], "expires_at")
            v.update(self.label(step)[0], **patch, at=at)
            return None
        if op == "set_owner_policy":
            v.set_owner_policy(step["owner"], step["limits"], at=at)
            return None
        if op == "set_default_owner_policy":
            v.set_default_owner_policy(step["limits"], at=at)
            return None
        if op == "set_price":
            v.set_price(step["model"], step["price"], at=at)
            return None
        if op == "remaining":
            return v.remaining(self.label(step)[0], at=at)
        if op == "tick":
            v.tick(at)
            return None
        if op == "usage":
            query = times(step.get("query", {}), "from", "to")
            if "from" in query:
                query["from_"] = query.pop("from")
            return v.usage(**query)
        raise ScenarioError(f"unknown op {op!r}")


def check_remaining(field: str, expected: dict[str, Any], found: nanu.Remaining | None) -> None:
    for unit, want in expected.items():
        if unit not in UNITS:
            raise ScenarioError(f"{field}: unknown unit {unit!r}")
        same(f"{field}.{unit}", want, None if found is None else getattr(found, unit))


def check_verdict(expected: dict[str, Any], verdict: nanu.Verdict) -> None:
    only(
        "verify expect",
        expected,
        {"allowed", "code", "grace", "model", "hold", "retry_after_ms", "resets_at",
         "denied_by", "remaining"},
    )
    for name, want in expected.items():
        if name == "hold":
            same(name, want, verdict.hold_id is not None)
        elif name == "resets_at":
            same_instant(name, want, verdict.resets_at)
        elif name == "remaining":
            check_remaining(name, want, verdict.remaining)
        elif name == "denied_by":
            by = verdict.denied_by
            if want is None or by is None:
                same(name, want, by)
                continue
            only("denied_by", want, {"level", "index", "unit"})
            found = {"level": by.level, "index": by.index, "unit": by.limit.unit}
            for sub, value in want.items():
                same(f"denied_by.{sub}", value, found[sub])
        else:
            same(name, want, getattr(verdict, name))


def check_rows(expected: dict[str, Any], rows: list[nanu.UsageRow]) -> None:
    only("usage expect", expected, {"rows"})
    if "rows" not in expected:
        return
    want_rows = expected["rows"]
    if len(want_rows) != len(rows):
        raise ScenarioError(f"rows: expected {len(want_rows)} rows, found {len(rows)}: {rows}")
    for i, (want, row) in enumerate(zip(want_rows, rows)):
        for name, value in want.items():
            field = f"rows[{i}].{name}"
            if name == "bucket":
                same_instant(field, value, row.bucket)
            elif name in {"group", "requests", "denied", "input_tokens", "output_tokens",
                          "tokens", "cost"}:
                same(field, value, getattr(row, name))
            else:
                raise ScenarioError(f"unknown row field {name!r}")


def check(op: str, expected: Any, answer: Any) -> None:
    if op in {"release", "revoke_owner"}:
        same("result", expected, answer)
    elif op == "verify":
        check_verdict(expected, answer)
    elif op == "charge":
        only("charge expect", expected, {"cost", "priced", "replayed", "exceeded"})
        for name, want in expected.items():
            found = len(answer.exceeded) if name == "exceeded" else getattr(answer, name)
            same(name, want, found)
    elif op == "remaining":
        check_remaining("remaining", expected, answer)
    elif op == "usage":
        check_rows(expected, answer)


def run(scenario: dict[str, Any], path: Path) -> None:
    only("scenario", scenario, {"name", "description", "steps"})
    steps = scenario.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ScenarioError("a scenario needs a non-empty list of steps")
    run = Run(path)
    try:
        for i, step in enumerate(steps):
            try:
                op = step.get("op")
                if op not in OPS:
                    raise ScenarioError(f"unknown op {op!r}")
                fields, defines_expect = OPS[op]
                only("step", step, COMMON | fields)
                if "expect" in step and not defines_expect:
                    raise ScenarioError(f"op {op!r} defines no expect")
                if "expect" in step and "expect_error" in step:
                    raise ScenarioError("give expect or expect_error, not both")
                if "at" in step:
                    run.at = utc(step["at"])
                try:
                    answer = run.step(op, step)
                except nanu.Error as err:
                    if "expect_error" not in step:
                        raise ScenarioError(f"failed: {err.code}: {err}") from err
                    same("error", step["expect_error"], err.code)
                    continue
                if "expect_error" in step:
                    raise ScenarioError(f"expected error {step['expect_error']}, it succeeded")
                if "expect" in step:
                    check(op, step["expect"], answer)
            except ScenarioError as err:
                raise ScenarioError(f"step {i} ({json.dumps(step)}): {err}") from err
    finally:
        run.vault.close()


def test_the_folder_holds_scenarios() -> None:
    # A glob that matches nothing must fail, not pass on nothing.
    assert len(FILES) >= 10, f"only {len(FILES)} scenarios in {SCENARIOS}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario(path: Path, tmp_path: Path) -> None:
    scenario = json.loads(path.read_text())
    run(scenario, tmp_path / "scenario.vault")


def test_the_runner_rejects_a_typo(tmp_path: Path) -> None:
    scenario = {
        "name": "typo",
        "description": "an unknown field must fail the scenario",
        "steps": [{"op": "mint", "as": "k", "spec": {"owner": "a"}, "expectt": {}}],
    }
    with pytest.raises(ScenarioError, match="unknown field 'expectt'"):
        run(scenario, tmp_path / "typo.vault")


def test_the_runner_sees_a_wrong_answer(tmp_path: Path) -> None:
    scenario = {
        "name": "wrong",
        "description": "a wrong expectation must fail",
        "steps": [
            {"op": "mint", "as": "k", "spec": {"owner": "a", "limits": ["requests=1"]}},
            {"op": "verify", "key": "k", "expect": {"allowed": True, "remaining": {"requests": 1}}},
        ],
    }
    with pytest.raises(ScenarioError, match="remaining.requests: expected 1, found 0"):
        run(scenario, tmp_path / "wrong.vault")
