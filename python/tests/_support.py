"""Plain helpers shared by the test modules (fixtures are in conftest.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parents[2]
RELEASE = REPO / "target" / "release"
FIRMA = RELEASE / "firma"
EXAMPLE_SIDECAR = RELEASE / "firma-example-sidecar"

#: The JSON keys of a SidecarEntry, in order (DESIGN §3).
ENTRY_KEYS = [
    "sandbox_id",
    "agent_id",
    "session_id",
    "authority_url",
    "policy_bundle_version",
    "pid",
    "started_at",
    "state",
    "listen",
    "uptime_secs",
]


def metadata_toml(sandbox_id: str, pid: int, **extra: Any) -> str:
    """The text of a metadata.toml, written by hand for malformed fixtures."""
    fields: Dict[str, Any] = {
        "sandbox_id": sandbox_id,
        "agent_id": "agent-raw",
        "session_id": "session-raw",
        "authority_url": "https://authority.example.invalid",
        "policy_bundle_version": "sha256:raw",
        "pid": pid,
        "started_at": "2026-01-02T03:04:05Z",
    }
    fields.update(extra)
    lines = []
    for key, value in fields.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


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
