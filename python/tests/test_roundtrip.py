"""Property-style round trip (SECURITY.md, Fuzzing): random metadata written with the
core's writer reads back unchanged as :class:`SidecarEntry` values, and their
JSON equals the CLI's ``sidecar status --json`` bytes.

Seeded and deterministic: each seed fills one runtime dir with many markers
for this (live) test process, so every entry is ``unhealthy`` (no socket).
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any, Callable, Dict, List, Tuple

import pytest

import firma_stack
from firma_stack import SidecarEntry, State
from firma_stack.testing import write_marker

from _support import ENTRY_KEYS, firma_cli

SEEDS = [11, 22, 33, 44]
MARKERS_PER_DIR = 60
TEXT_FIELDS = ["agent_id", "session_id", "authority_url", "policy_bundle_version", "started_at"]

#: Characters JSON encoders are known to treat differently; each must show up.
SPECIALS = [
    '"', "\\", "/", "\n", "\t", "\r", "\b", "\f", "\x00", "\x01", "\x1f", "\x7f",
    "<", ">", "&", "'", "\u2028", "\u2029", "\u00e9", "\ufeff", "\U0001f600", "\U0010ffff",
]  # fmt: skip
ASCII = [chr(c) for c in range(0x20, 0x7F)]
ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"


def random_text(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.1:
        return ""
    if roll < 0.2:
        # Long: 1-2 KiB of UTF-8.
        target = rng.randint(1024, 2048)
        parts: List[str] = []
        size = 0
        while size < target:
            c = rng.choice(SPECIALS) if rng.random() < 0.3 else rng.choice(ASCII)
            parts.append(c)
            size += len(c.encode())
        return "".join(parts)
    return "".join(
        rng.choice(SPECIALS) if rng.random() < 0.4 else rng.choice(ASCII)
        for _ in range(rng.randint(1, 40))
    )


def random_sandbox_id(rng: random.Random) -> str:
    first = rng.choice(ID_CHARS.replace(".", ""))
    return first + "".join(rng.choice(ID_CHARS) for _ in range(rng.randint(0, 39)))


def generate(rng: random.Random) -> Dict[str, Dict[str, str]]:
    """sandbox id -> the text fields written for it."""
    cases: Dict[str, Dict[str, str]] = {}
    while len(cases) < MARKERS_PER_DIR:
        sandbox_id = random_sandbox_id(rng)
        if sandbox_id not in cases:
            cases[sandbox_id] = {field: random_text(rng) for field in TEXT_FIELDS}
    return cases


def stable(read_py: Callable[[], Any], read_cli: Callable[[], Any]) -> Tuple[Any, Any]:
    """Python read, CLI read, Python read, until both Python reads agree
    (uptime_secs ticks once a second); bounded by attempts, not time."""
    for _ in range(5):
        before = read_py()
        cli = read_cli()
        if before == read_py():
            return before, cli
    raise AssertionError("listing kept changing between reads")


def cli_status(runtime_dir: str) -> str:
    done = firma_cli(runtime_dir, "sidecar", "status", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("\n")
    return done.stdout[:-1]


def encode(entries: List[SidecarEntry]) -> str:
    return json.dumps([e.to_dict() for e in entries], ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize("seed", SEEDS)
def test_entries_and_json_round_trip(seed: int, firma_runtime_dir: str) -> None:
    cases = generate(random.Random(seed))
    pid = os.getpid()
    for sandbox_id, fields in cases.items():
        write_marker(
            firma_runtime_dir,
            sandbox_id,
            pid=pid,
            agent_id=fields["agent_id"],
            session_id=fields["session_id"],
            authority_url=fields["authority_url"],
            policy_bundle_version=fields["policy_bundle_version"],
            started_at=fields["started_at"],
        )
    # One start time for all: their uptimes then tick at the same instant,
    # once a second, instead of some marker ticking in almost any window.
    now = time.time()
    for sandbox_id in cases:
        os.utime(os.path.join(firma_runtime_dir, "run", sandbox_id, "sidecar.pid"), (now, now))

    entries, cli = stable(
        lambda: firma_stack.list(firma_runtime_dir), lambda: cli_status(firma_runtime_dir)
    )

    # (a) The typed values are what was written, field by field.
    assert sorted(e.sandbox_id for e in entries) == sorted(cases)
    for entry in entries:
        written = cases[entry.sandbox_id]
        for field in TEXT_FIELDS:
            assert getattr(entry, field) == written[field], (entry.sandbox_id, field)
        assert entry.pid == pid
        assert entry.state is State.UNHEALTHY  # live pid, no socket
        marker = os.path.join(firma_runtime_dir, "run", entry.sandbox_id)
        assert entry.listen == os.path.join(marker, "sidecar.sock")
        assert isinstance(entry.uptime_secs, int) and entry.uptime_secs >= 0
        # The constructor round-trips a value to an equal one.
        assert SidecarEntry(**entry.to_dict()) == entry

    # (b) The JSON equals the CLI's, byte for byte (same key order, same
    # escaping: both escape only '"', '\\' and U+0000-U+001F, with the
    # short forms \b \t \n \f \r and lowercase \u00XX otherwise).
    ours = encode(entries)
    assert ours == cli
    parsed = json.loads(cli)
    assert [list(d) for d in parsed] == [ENTRY_KEYS] * len(entries)
    assert parsed == [e.to_dict() for e in entries]


def test_the_seeds_exercise_every_special_character_and_shape() -> None:
    """Guards the generator: the seeds above write every special character,
    empty strings and 1-2 KiB strings."""
    texts = [
        text
        for seed in SEEDS
        for fields in generate(random.Random(seed)).values()
        for text in fields.values()
    ]
    assert {c for c in SPECIALS if any(c in t for t in texts)} == set(SPECIALS)
    assert "" in texts
    assert any(1024 <= len(t.encode()) <= 2048 + 4 for t in texts)
