"""The conformance suite, Python runner.

Every scenario of ``tests/conformance/scenarios`` is laid down by
``firma-testkit`` and called through this binding. The answer is built from
the binding's own objects (entry attributes, the exception's ``code``,
``path`` and ``errno``), put into canonical form by the testkit, and compared
with the scenario's expected answer. Fixtures and normalisation exist once,
in the testkit; see tests/conformance/README.md.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, List, Optional, Tuple

import pytest

import firma_stack
from firma_stack import SidecarEntry, StackError

from _support import CONFORMANCE, Kit

SCENARIOS = CONFORMANCE / "scenarios"

#: "Never hangs": far above any probe timeout a scenario uses.
HANG_BOUND_SECS = 30.0


def entry(e: SidecarEntry) -> Dict[str, Any]:
    return {
        "sandbox_id": e.sandbox_id,
        "agent_id": e.agent_id,
        "session_id": e.session_id,
        "authority_url": e.authority_url,
        "policy_bundle_version": e.policy_bundle_version,
        "pid": e.pid,
        "started_at": e.started_at,
        "state": e.state.value,
        "listen": e.listen,
        "uptime_secs": e.uptime_secs,
    }


def event_dict(ev: Any) -> Dict[str, Any]:
    """A typed watch event back as its JSON object (``at`` is not compared)."""
    d: Dict[str, Any] = {"event": ev.kind}
    for key in ("sandbox_id", "reason"):
        if hasattr(ev, key):
            d[key] = getattr(ev, key)
    if hasattr(ev, "entry"):
        d["entry"] = entry(ev.entry)
    if hasattr(ev, "previous"):
        d["previous"] = str(ev.previous)
    return d


def watch_synced(runtime: str, timeout: Optional[float]) -> List[Dict[str, Any]]:
    """A read-only watcher's events up to and including ``synced``."""
    out: List[Dict[str, Any]] = []
    with firma_stack.watch(runtime, collect=False, timeout=timeout) as w:
        for ev in w:
            out.append(event_dict(ev))
            if isinstance(ev, firma_stack.Synced):
                return out
    return out


def filtered(op: str, runtime: str, f: Dict[str, Any], timeout: Optional[float]) -> Any:
    """list/inspect with the selection arguments a step's Filter object
    names (the binding hands them to the core's Filter)."""
    kwargs: Dict[str, Any] = {"timeout": timeout}
    for key, arg in (("states", "state"), ("agent", "agent"), ("session", "session"),
                     ("sandbox_ids", "sandbox_id"), ("reasons", "reason")):
        if key in f and f[key] != []:
            kwargs[arg] = f[key]
    unknown = set(f) - {"states", "agent", "session", "sandbox_ids", "reasons"}
    assert not unknown, f"the Python runner cannot pass {unknown}"
    if op == "list_filtered":
        assert "reason" not in kwargs, "list takes no reason filter in Python"
        return [entry(e) for e in firma_stack.list(runtime, **kwargs)]
    return [r.to_dict() for r in firma_stack.inspect(runtime, **kwargs)]


def call(step: Dict[str, Any]) -> Tuple[str, Any]:
    op = step["op"]
    ms: Optional[int] = step["timeout_ms"]
    timeout = None if ms is None else ms / 1000
    try:
        if op == "list":
            return "ok", [entry(e) for e in firma_stack.list(step["runtime"], timeout=timeout)]
        if op == "get":
            got = firma_stack.get(step["runtime"], step["id"], timeout=timeout)
            return "ok", None if got is None else entry(got)
        if op == "gc_stale":
            return "ok", firma_stack.gc_stale(step["runtime"])
        if op == "watch_synced":
            return "ok", watch_synced(step["runtime"], timeout)
        if op == "inspect":
            return "ok", [r.to_dict() for r in firma_stack.inspect(step["runtime"], timeout=timeout)]
        if op == "probe_entry":
            return "ok", entry(firma_stack.probe_entry(step["dir"], timeout=timeout))
        if op == "metrics":
            return "ok", firma_stack.render_metrics(step["runtime"], timeout=timeout)
        if op == "runtime_dir_state":
            return "ok", firma_stack.runtime_dir_state(step["runtime"]).value
        if op in ("list_filtered", "inspect_filtered"):
            return "ok", filtered(op, step["runtime"], json.loads(step["arg"]), timeout)
        if op == "wait":
            w = json.loads(step["arg"])
            ms_wait = w.get("timeout_ms")
            outcome = firma_stack.wait(
                w.get("sandbox_ids", []),
                for_=w["for"],
                timeout=30.0 if ms_wait is None else ms_wait / 1000,
                runtime_dir=step["runtime"],
                probe_timeout=timeout,
            )
            return "ok", outcome.to_dict()
    except StackError as err:
        return "error", {"code": err.code, "path": err.path, "errno": getattr(err, "errno", None)}
    raise AssertionError(f"the Python runner has no op {op!r}")


def bounded(step: Dict[str, Any]) -> Tuple[str, Any]:
    """call(step), failing instead of hanging the suite."""
    outcome: List[Tuple[str, Any]] = []
    t = threading.Thread(target=lambda: outcome.append(call(step)), daemon=True)
    t.start()
    t.join(HANG_BOUND_SECS)
    assert outcome, f"{step['op']} did not return within {HANG_BOUND_SECS} s"
    return outcome[0]


@pytest.mark.parametrize("scenario", sorted(p.stem for p in SCENARIOS.glob("*.json")))
def test_scenario(scenario: str) -> None:
    kit = Kit(SCENARIOS / f"{scenario}.json")
    failures: List[str] = []
    try:
        for i, step in enumerate(kit.plan["steps"]):
            if "python" in step["skip"]:
                continue
            if step["op"] == "disk":
                actual = kit.ask(f"disk {i}")
            else:
                kind, value = bounded(step)
                actual = kit.ask(f"canon {kind} {json.dumps(value)}")
            if actual != step["expect"]:
                failures.append(
                    f"scenario {scenario}, step {i} ({step['op']} "
                    f"{step.get('id', '')}{step.get('dir', '')}) on python:\n"
                    f"  expected {step['expect']}\n  actual   {actual}"
                )
    finally:
        kit.close()
    assert not failures, "\n".join(failures)


def test_every_scenario_is_collected() -> None:
    assert sorted(SCENARIOS.glob("*.json")), f"no scenarios in {SCENARIOS}"
