#!/usr/bin/env python3
"""One summary line for one file's cargo-mutants run (mk/mutants.mk).

Usage: mutants-summary.py NAME OUTDIR/mutants.out EQUIVALENTS

Reads caught.txt, timeout.txt, missed.txt (and unviable.txt) that
cargo-mutants writes, and EQUIVALENTS: one surviving mutant per line, as
cargo-mutants prints it (`path:line:col: replace …`), then ` # ` and a
one-line reason. The column is ignored when matching, the line is not
(two mutants of one function can read alike): when an edit moves an
equivalent, the summary shows it as missed again, and its entry's line
must be updated. Prints

  NAME: caught C, missed M, equivalent E, unviable U: P% caught

(P = C / (C + M)), then each missed mutant that is not listed as an
equivalent, indented. Missing output (the run did not happen) prints
"NAME: not run".
"""
import os
import re
import sys

name, out, equiv_path = sys.argv[1:4]


def lines(f):
    p = os.path.join(out, f)
    if not os.path.exists(p):
        return None
    with open(p) as fh:
        return [l.rstrip("\n") for l in fh if l.strip()]


def key(mutant):
    # "src/x.rs:12:5: replace a with b" -> "src/x.rs:12: replace a with b"
    return re.sub(r"^([^:]+):(\d+):\d+:", r"\1:\2:", mutant.strip())


caught, timeout, missed, unviable = (
    lines(f) for f in ("caught.txt", "timeout.txt", "missed.txt", "unviable.txt")
)
if caught is None or missed is None:
    print(f"{name}: not run")
    sys.exit(0)
equivalents = {}
if os.path.exists(equiv_path):
    with open(equiv_path) as fh:
        for l in fh:
            l = l.strip()
            if not l or l.startswith("#"):
                continue
            mutant, _, reason = l.partition(" # ")
            if not reason.strip():
                sys.exit(f"{equiv_path}: no reason given for: {mutant}")
            equivalents[key(mutant)] = reason.strip()
c = len(caught) + len(timeout or [])
eq = [m for m in missed if key(m) in equivalents]
real = [m for m in missed if key(m) not in equivalents]
total = c + len(real)
pct = 100.0 * c / total if total else 100.0
print(
    f"{name}: caught {c}, missed {len(real)}, equivalent {len(eq)}, "
    f"unviable {len(unviable or [])}: {pct:.1f}% caught"
)
for m in real:
    print(f"    missed: {m}")
