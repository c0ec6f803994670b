"""The GIL is released while the core probes: other Python threads run."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, TypeVar

import pytest

import firma_stack
from firma_stack import State
from firma_stack.testing import SidecarFactory, SidecarProcess

Start = SidecarFactory
T = TypeVar("T")

PROBE_TIMEOUT = 1.0
# How the proof works: a counting thread's progress is first measured while
# the main thread blocks in a GIL-releasing wait of BASELINE_SECS. During a
# probe of PROBE_TIMEOUT (5x longer) it should count about 5x that if the
# GIL is released; if the probe held the GIL, the counter would only run
# for the interpreter's switch interval (5 ms), about 1/40 of the baseline.
# Requiring just the baseline leaves a wide margin both ways.
BASELINE_SECS = 0.2


class Counter(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.count = 0
        self.running = True
        self.started_counting = threading.Event()

    def run(self) -> None:
        self.started_counting.set()
        while self.running:
            self.count += 1


def assert_other_threads_run_during(
    what: str, call: Callable[[], T], waited: Callable[[T], bool]
) -> None:
    """Runs `call` (a probe of a SYN-dropping endpoint) beside a counting
    thread and asserts that the probe really waited out its timeout and that
    the counter kept running meanwhile: the GIL was released."""
    counter = Counter()
    counter.start()
    counter.started_counting.wait()
    start = counter.count
    threading.Event().wait(BASELINE_SECS)  # releases the GIL for a known span
    baseline = counter.count - start

    began = time.monotonic()
    before = counter.count
    result = call()
    after = counter.count
    elapsed = time.monotonic() - began
    counter.running = False
    counter.join()

    assert waited(result), f"{what} did not wait out a timeout: {result!r}"
    assert after - before >= baseline, (
        f"the other thread counted {after - before} while {what} ran for {elapsed:.2f} s, "
        f"but {baseline} in {BASELINE_SECS} s of a GIL-free wait"
    )
    assert elapsed < 30  # never hangs


@pytest.mark.parametrize("call", ["probe_entry", "get", "list", "render_metrics"])
def test_other_threads_run_while_a_probe_waits_on_a_wedged_tcp_endpoint(
    firma_runtime_dir: str, firma_sidecar: Start, call: str
) -> None:
    sc = firma_sidecar("stuck-tcp", mode="wedged", tcp="127.0.0.1:0")
    probes: dict[str, Callable[[], Any]] = {
        "probe_entry": lambda: firma_stack.probe_entry(sc.marker_dir, timeout=PROBE_TIMEOUT),
        "get": lambda: firma_stack.get(firma_runtime_dir, "stuck-tcp", timeout=PROBE_TIMEOUT),
        "list": lambda: firma_stack.list(firma_runtime_dir, timeout=PROBE_TIMEOUT)[0],
        "render_metrics": lambda: firma_stack.render_metrics(
            firma_runtime_dir, timeout=PROBE_TIMEOUT
        ),
    }

    def waited(result: Any) -> bool:
        if isinstance(result, str):  # the metrics: the sidecar is not up
            return 'firma_sidecars{state="unhealthy"} 1\n' in result
        return bool(result.state is State.UNHEALTHY)

    assert_other_threads_run_during(call, probes[call], waited)
