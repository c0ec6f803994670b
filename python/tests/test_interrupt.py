"""Ctrl-C reaches a blocking call promptly: ``list``, ``get``, ``inspect``,
``probe_entry`` and ``wait`` wait for the core with the GIL released *and* run the
signal handlers while they wait, so SIGINT into a probe of a SYN-dropping
endpoint raises KeyboardInterrupt at once, not when the probe times out."""

from __future__ import annotations

import os
import subprocess
import sys
import signal
import threading
import time
from typing import Any, Callable

import pytest

import firma_stack
from firma_stack.testing import SidecarFactory, SidecarProcess

Start = SidecarFactory

#: The probe timeout asked for: what the call would wait without the fix.
PROBE_TIMEOUT = 10.0
#: When SIGINT is sent, after the call started.
SIGNAL_AFTER = 0.5
#: Upper bound for KeyboardInterrupt after the signal (not a speed claim).
PROMPT = 2.0


@pytest.mark.parametrize("call", ["list", "get", "inspect", "probe_entry", "wait"])
def test_sigint_interrupts_a_blocking_probe_promptly(
    firma_runtime_dir: str, firma_sidecar: Start, call: str
) -> None:
    # Backlog 0 and filled: every further SYN is dropped, a probe waits
    # out its whole timeout.
    sc = firma_sidecar("py-wedged", mode="wedged", tcp="127.0.0.1:0")
    calls: dict[str, Callable[[], Any]] = {
        "list": lambda: firma_stack.list(firma_runtime_dir, timeout=PROBE_TIMEOUT),
        "get": lambda: firma_stack.get(firma_runtime_dir, "py-wedged", timeout=PROBE_TIMEOUT),
        "inspect": lambda: firma_stack.inspect(firma_runtime_dir, timeout=PROBE_TIMEOUT),
        "probe_entry": lambda: firma_stack.probe_entry(sc.marker_dir, timeout=PROBE_TIMEOUT),
        # Never running: it would wait its whole timeout.
        "wait": lambda: firma_stack.wait("py-wedged", timeout=PROBE_TIMEOUT,
                                         runtime_dir=firma_runtime_dir),
    }
    assert threading.current_thread() is threading.main_thread()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    sent = threading.Event()
    sent_at = [0.0]

    def interrupt() -> None:
        time.sleep(SIGNAL_AFTER)
        sent_at[0] = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)
        sent.set()

    t = threading.Thread(target=interrupt)
    began = time.monotonic()
    t.start()
    with pytest.raises(KeyboardInterrupt):
        calls[call]()
        # Should the call return (it must not), the signal is still due.
        sent.wait(PROBE_TIMEOUT)
        time.sleep(0.1)
    ended = time.monotonic()
    t.join()
    assert sent.is_set()
    late = ended - sent_at[0]
    assert late < PROMPT, (
        f"{call}: KeyboardInterrupt {late:.2f} s after SIGINT "
        f"({ended - began:.2f} s into a probe of {PROBE_TIMEOUT} s)"
    )


_THREADS_SCRIPT = r"""
import os, sys, threading
import firma_stack

def workers():
    names = []
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/comm") as f:
            names.append(f.read().strip())
    return names.count("firma-call")

d, sid = sys.argv[1], sys.argv[2]
t = threading.Thread(target=lambda: [firma_stack.get(d, sid) for _ in range(50)])
t.start(); t.join()
off_main = workers()
for _ in range(50):
    assert firma_stack.get(d, sid) is not None
print(off_main, workers())
"""


def test_main_thread_calls_share_one_worker_and_other_threads_call_inline(
    firma_runtime_dir: str, firma_sidecar: Start
) -> None:
    # Only the main thread runs signal handlers, so only its calls need a
    # worker to wait on; a run of them takes turns on one worker thread
    # rather than starting one each.
    firma_sidecar("py-workers")
    done = subprocess.run(
        [sys.executable, "-c", _THREADS_SCRIPT, firma_runtime_dir, "py-workers"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "1"]
