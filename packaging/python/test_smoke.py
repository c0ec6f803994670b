"""Uses firma_stack's pytest plugin the way a project depending on it does.

The package's smoke test, run outside the repository against an installed
firma_stack: by scripts/python-outside.sh (``pip install ./python``) and by
packaging/wheel-test.sh (the portable wheel of ``make wheel``).
"""

import firma_stack
from firma_stack import State


def test_a_serving_sidecar_is_listed(firma_runtime_dir, firma_sidecar):
    sidecar = firma_sidecar("outside-serve")
    (entry,) = firma_stack.list(firma_runtime_dir)
    assert entry.sandbox_id == "outside-serve"
    assert entry.state is State.RUNNING
    assert entry.pid == sidecar.pid


def test_wedged_and_killed_sidecars(firma_runtime_dir, firma_sidecar):
    firma_sidecar("outside-wedged", mode="wedged")
    dead = firma_sidecar("outside-dead", mode="no-socket")
    dead.kill()
    assert firma_stack.get(firma_runtime_dir, "outside-wedged").state is State.UNHEALTHY
    assert firma_stack.get(firma_runtime_dir, "outside-dead").state is State.STOPPED
    assert firma_stack.gc_stale(firma_runtime_dir) == ["outside-dead"]
