"""Garbage collection from many Python threads at once: each stale id is
reported by exactly one of them. (Which markers are stale, kept or never
touched is checked on every surface by tests/conformance.)"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import List

import firma_stack

from _support import core_fixture


def test_concurrent_gc_reports_each_stale_id_once() -> None:
    with core_fixture("fixtures/live-and-stale.json") as kit:
        runtime = kit.placeholders["runtime"]
        results: List[List[str]] = []
        errors: List[BaseException] = []
        barrier = threading.Barrier(4)

        def collect() -> None:
            try:
                barrier.wait()
                results.append(firma_stack.gc_stale(runtime))
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=collect) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)

        assert errors == []
        assert sorted(i for r in results for i in r) == [f"stale-{i:02d}" for i in range(20)]
        assert os.listdir(Path(runtime, "run")) == ["live"]
