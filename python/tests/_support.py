"""Plain helpers shared by the test modules (fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, List, NamedTuple

REPO = Path(__file__).resolve().parents[2]
RELEASE = REPO / "target" / "release"
FIRMA = RELEASE / "firma"
EXAMPLE_SIDECAR = RELEASE / "firma-example-sidecar"
#: The conformance suite's fixture tool (tests/conformance/README.md).
TESTKIT = Path(os.environ.get("FIRMA_TESTKIT") or RELEASE / "firma-testkit")
CONFORMANCE = REPO / "tests" / "conformance"


def _entry_keys() -> List[str]:
    """The JSON keys of a SidecarEntry, in order, read from the contract
    (docs/design.md, "Entries": the one line of keys in backquotes), so
    the tests check the binding against it rather than against a copy."""
    text = (REPO / "docs" / "design.md").read_text()
    section = text.split("\n## Entries\n", 1)[1].split("\n## ", 1)[0]
    line = re.search(r"^`(\w+(?:,\s+\w+)+)`$", section, re.M)
    assert line is not None, "docs/design.md, Entries: no line of keys"
    return re.split(r",\s+", line.group(1))


#: The JSON keys of a SidecarEntry, in order (docs/design.md, "Entries").
ENTRY_KEYS = _entry_keys()


class User(NamedTuple):
    """A real system user made by the ``throwaway_user`` fixture
    (conftest.py) for one test."""

    name: str
    uid: int
    gid: int


def metadata_toml(sandbox_id: str, pid: int, **extra: Any) -> str:
    """A valid metadata.toml for ``sandbox_id`` and ``pid``; ``extra`` keys
    override or add fields. Strings are written as TOML basic strings through
    JSON (whose escapes TOML shares), integers as they are."""
    fields: Dict[str, Any] = {
        "sandbox_id": sandbox_id,
        "agent_id": "agent",
        "session_id": "session",
        "authority_url": "https://authority.invalid",
        "policy_bundle_version": "v1",
        "pid": pid,
        "started_at": "2026-12-01T00:00:00Z",
    }
    fields.update(extra)
    return "".join(
        f"{k} = {v}\n" if isinstance(v, int) else f"{k} = {json.dumps(v)}\n"
        for k, v in fields.items()
    )


def firma_cli(runtime_dir: str, *args: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [str(FIRMA), "--runtime-dir", runtime_dir, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def firma_json(runtime_dir: str, *args: str) -> Any:
    done = firma_cli(runtime_dir, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def ids(entries: List[Any]) -> List[str]:
    return [e.sandbox_id for e in entries]


class Kit:
    """A fixture laid down by firma-testkit, torn down by close(): its plan
    (placeholders such as ``{runtime}`` and ``pid:live``, and the steps of a
    scenario) and the request channel of tests/conformance/README.md."""

    def __init__(self, scenario: Path) -> None:
        self.proc = subprocess.Popen(
            [str(TESTKIT), "up", str(scenario)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self._stdout().readline()
        assert line, f"{TESTKIT} gave no plan for {scenario.name} (see stderr)"
        self.plan: Dict[str, Any] = json.loads(line)
        self.placeholders: Dict[str, Any] = self.plan["placeholders"]

    def _stdout(self) -> Any:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def ask(self, request: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(request + "\n")
        self.proc.stdin.flush()
        return str(self._stdout().readline()).rstrip("\n")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self._stdout().close()


@contextlib.contextmanager
def core_fixture(path: str) -> Iterator[Kit]:
    """The fixture of ``tests/conformance/<path>`` for the duration of the
    block, e.g. ``core_fixture("fixtures/live-and-stale.json")``."""
    kit = Kit(CONFORMANCE / path)
    try:
        yield kit
    finally:
        kit.close()
