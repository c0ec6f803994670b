"""The example sidecar, run as ``python -m firma_stack.example_sidecar``.

The same program, with the same flags, as the ``firma-example-sidecar``
binary of the firma-stack checkout (``--runtime-dir DIR --id ID
[--mode serve|wedged|no-socket] [--tcp ADDR] [--agent A] [--session S]``),
compiled into the native module: it writes its marker with the core's
writer, serves (or deliberately fails to serve) its endpoint, prints
``ready <marker_dir>`` once a probe sees its final state, and removes its
marker on SIGTERM or SIGINT. :mod:`firma_stack.testing` and the pytest
plugin start it this way, so they need no checkout.
"""

from __future__ import annotations

import sys
from typing import List, Optional

from ._native import _run_example_sidecar

__all__ = ["main"]


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the example sidecar with ``argv`` (default: ``sys.argv[1:]``)
    until SIGTERM or SIGINT; returns its exit status."""
    args = sys.argv[1:] if argv is None else argv
    return _run_example_sidecar(["firma-example-sidecar", *args])


if __name__ == "__main__":
    sys.exit(main())
