#!/usr/bin/env python3
"""Runs the fenced code blocks of every README (`make test-readme`).

Every README.md git tracks is read, and every fenced block in it is
handled by its info string, `LANG [ROLE]`; each block gives one line, so
nothing is skipped silently:

- `c`, `go`, `rust`, `python`: a whole program, built against this checkout
  (C: include/firma_stack.h and target/release/libfirma_stack.a; Go: the
  module bindings/go through a replace directive, `go run`; Rust: rustc
  against target/release/libfirma_stack.rlib; Python: .venv/bin/python,
  where `make python` installed the package) and run against a real fleet:
  `firma-testkit up tests/conformance/fixtures/readme-fleet.json` lays down
  `web-1` (running) and `stuck-2` (unhealthy) afresh for each block, and
  the program runs with FIRMA_STATE_DIR naming that runtime directory. It
  passes when it builds without warnings and exits 0 within 60 s.
- ROLE `fragment`: part of a program, completed as documented here, then
  built and run like a whole one. C: its `#include` lines at file scope,
  the rest as the body of `int main(void)` (so the header must stand
  alone). Go: the body of `func fragment(ctx context.Context, dir,
  markerDir string) error` (dir the fleet's runtime directory, markerDir
  web-1's marker), with context, errors, fmt, log, time and firmastack
  imported and every variable it declares at its top level used. Rust:
  the body of `fn main() -> Result<(), Box<dyn std::error::Error>>`.
- ROLE `compile-only`: a loop that runs until a signal; built (completed
  as a fragment when it also says `fragment`), not run.
- `sh`, `console`: commands for a person (they build, install or start
  long-running things): shown, not run, unless the ROLE is `run`, which
  runs the block with bash against the fleet.
- `text`, `json`, `ini`, `toml`, `yaml`: not code; shown, not run.
- A block without a language fails: every block says what it is.

Closes with "N passed, N failed" (and how many were not run); exits 1 on a
failure. `--self-test` checks the harness itself on blocks that must fail.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
FLEET = ROOT / "tests" / "conformance" / "fixtures" / "readme-fleet.json"
RUN_BOUND = 60
CC = os.environ.get("C_CC", "cc")
C_FLAGS = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-Wpedantic"]
NOT_CODE = {"text", "json", "ini", "toml", "yaml"}
SHELL = {"sh", "bash", "console"}
ROLES = {"fragment", "compile-only", "run"}


class Failed(Exception):
    pass


def blocks(path):
    """(line, info, text) of every fenced block of a Markdown file."""
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(`{3,}|~{3,})(.*)$", lines[i])
        if not m:
            i += 1
            continue
        fence, info, start = m.group(1), m.group(2).strip(), i + 1
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        yield start, info, "\n".join(body) + "\n"


class Fleet:
    """A fresh fleet from firma-testkit, torn down when its stdin closes."""

    def __init__(self):
        kit = os.environ.get("FIRMA_TESTKIT") or str(RELEASE / "firma-testkit")
        self.proc = subprocess.Popen(
            [kit, "up", str(FLEET)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline()
        try:
            self.runtime = json.loads(line)["placeholders"]["runtime"]
        except (ValueError, KeyError) as e:
            self.close()
            raise Failed(f"firma-testkit gave no plan ({e}): {line!r}")

    def close(self):
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run(cmd, cwd, env=None, what="run"):
    """Runs cmd, bounded; Failed with its output unless it exits 0."""
    try:
        p = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_BOUND
        )
    except subprocess.TimeoutExpired:
        raise Failed(f"{what}: no exit within {RUN_BOUND} s")
    if p.returncode != 0:
        out = (p.stdout + p.stderr).strip()
        raise Failed(f"{what}: exit {p.returncode}\n{out}")


def fleet_run(cmd, cwd, env=None):
    with Fleet() as fleet:
        env = dict(env or os.environ, FIRMA_STATE_DIR=fleet.runtime)
        run(cmd, cwd, env)


def c_block(text, roles, work):
    if "fragment" in roles:
        includes = [l for l in text.splitlines() if l.startswith("#include")]
        body = [l for l in text.splitlines() if not l.startswith("#include")]
        text = "\n".join(includes + ["int main(void)", "{"] + body + ["return 0;", "}"]) + "\n"
    src = work / "block.c"
    src.write_text(text)
    exe = work / "block"
    lib = [str(RELEASE / "libfirma_stack.a"), "-lpthread", "-ldl", "-lm"]
    run([CC, *C_FLAGS, f"-I{ROOT / 'include'}", str(src), "-o", str(exe), *lib], work, what="cc")
    if "compile-only" not in roles:
        fleet_run([str(exe)], work)


GO_PRELUDE = """package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	firmastack "github.com/firma-stack/firma-stack/bindings/go"
)

var _, _, _, _, _ = context.Background, errors.Is, fmt.Println, log.Print, time.Second
var _ = firmastack.List

func main() {
	dir := os.Getenv("FIRMA_STATE_DIR")
	if err := fragment(context.Background(), dir, filepath.Join(dir, "run", "web-1")); err != nil {
		log.Fatal(err)
	}
}

func fragment(ctx context.Context, dir, markerDir string) error {
"""


def go_block(text, roles, work):
    if "fragment" in roles:
        declared = []
        for line in text.splitlines():
            m = re.match(r"^([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*:=", line)
            if m:
                declared += [v.strip() for v in m.group(1).split(",")]
        uses = "".join(f"\t_ = {v}\n" for v in dict.fromkeys(declared) if v != "_")
        text = GO_PRELUDE + text + uses + "\treturn nil\n}\n"
    (work / "main.go").write_text(text)
    (work / "go.mod").write_text(
        "module readmeblock\n\ngo 1.21\n\n"
        "require github.com/firma-stack/firma-stack/bindings/go v0.0.0\n\n"
        f"replace github.com/firma-stack/firma-stack/bindings/go => {ROOT / 'bindings' / 'go'}\n"
    )
    # Go's build cache notices neither a rebuilt static library nor a new
    # header: their digest in CGO_CFLAGS makes it (as mk/go.mk does).
    digest = hashlib.sha256()
    for f in (RELEASE / "libfirma_stack.a", ROOT / "include" / "firma_stack.h"):
        digest.update(f.read_bytes())
    env = dict(
        os.environ,
        GOTOOLCHAIN="local",
        GOFLAGS="-mod=mod -buildvcs=false",
        CGO_ENABLED="1",
        CGO_CFLAGS=f"-O2 -g -DFIRMA_STACK_BUILD_SUM={digest.hexdigest()[:16]}",
    )
    exe = work / "block"
    run([os.environ.get("GO", "go"), "build", "-o", str(exe), "."], work, env, what="go build")
    if "compile-only" not in roles:
        fleet_run([str(exe)], work)


def rust_extern(name):
    """The newest release rlib of a dependency, for rustc --extern."""
    found = sorted((RELEASE / "deps").glob(f"lib{name}-*.rlib"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise Failed(f"no target/release/deps/lib{name}-*.rlib (run make build)")
    return f"{name}={found[-1]}"


def rust_block(text, roles, work):
    if "fragment" in roles:
        text = "fn main() -> Result<(), Box<dyn std::error::Error>> {\n" + text + "Ok(())\n}\n"
    src = work / "block.rs"
    src.write_text(text)
    exe = work / "block"
    cmd = [
        "rustc", "--edition", "2024", "-D", "warnings", "-o", str(exe), str(src),
        "--extern", f"firma_stack={RELEASE / 'libfirma_stack.rlib'}",
        "--extern", rust_extern("serde_json"),
        "-L", f"dependency={RELEASE / 'deps'}",
    ]
    run(cmd, work, what="rustc")
    if "compile-only" not in roles:
        fleet_run([str(exe)], work)


def python_block(text, roles, work):
    py = ROOT / ".venv" / "bin" / "python"
    if not py.exists():
        raise Failed("no .venv/bin/python: run `make python` (the Python leg does) first")
    src = work / "block.py"
    src.write_text(text)
    if "compile-only" in roles:
        run([str(py), "-m", "py_compile", str(src)], work, what="py_compile")
    else:
        fleet_run([str(py), str(src)], work)


def shell_block(text, roles, work):
    src = work / "block.sh"
    src.write_text(text)
    path = f"{RELEASE}:{os.environ.get('PATH', '')}"
    fleet_run(["bash", "-euo", "pipefail", str(src)], work, dict(os.environ, PATH=path))


BUILDERS = {"c": c_block, "go": go_block, "rust": rust_block, "python": python_block}


def handle(info):
    """(verdict, handler or reason): 'run' with a function, or 'shown' with
    why it is not run; Failed for a block that does not say what it is."""
    words = info.split()
    if not words:
        raise Failed("a block without a language: say what it is (```text for output)")
    lang, roles = words[0], set(words[1:])
    unknown = roles - ROLES
    if unknown:
        raise Failed(f"unknown role {' '.join(sorted(unknown))} (known: {', '.join(sorted(ROLES))})")
    if lang in NOT_CODE:
        return "shown", f"{lang}: not code"
    if lang in SHELL:
        if "run" in roles:
            return "run", lambda text, work: shell_block(text, roles, work)
        return "shown", f"{lang}: commands for a person (a block tagged `{lang} run` is run)"
    if lang in BUILDERS:
        f = BUILDERS[lang]
        return "run", lambda text, work: f(text, roles, work)
    raise Failed(f"no way to run a {lang} block (tag it text, or teach scripts/readme-blocks.py)")


def check(files):
    passed = failed = shown = 0
    for path in files:
        rel = path.relative_to(ROOT) if path.is_absolute() and ROOT in path.parents else path
        for line, info, text in blocks(path):
            where = f"{rel}:{line} {info or '(untagged)'}"
            try:
                verdict, what = handle(info)
                if verdict == "shown":
                    shown += 1
                    print(f"not run: {where}: {what}")
                    continue
                work = Path(tempfile.mkdtemp(prefix="firma-readme."))
                try:
                    what(text, work)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                passed += 1
                print(f"pass: {where}")
            except Failed as e:
                failed += 1
                msg = str(e).replace("\n", "\n    ")
                print(f"FAIL: {where}: {msg}")
            sys.stdout.flush()
    print(f"readme blocks: {shown} shown and not run, by their info string")
    print(f"{passed} passed, {failed} failed")
    return failed


def self_test():
    """The harness fails what it must: an untagged block, a C program that
    exits 1, a C fragment that does not compile, an unknown role, a shell
    block that fails; and passes a C fragment on the header alone."""
    with tempfile.TemporaryDirectory() as d:
        readme = Path(d) / "README.md"
        readme.write_text(
            "```\nno language\n```\n"
            "```c\nint main(void) { return 1; }\n```\n"
            "```c fragment\nundeclared();\n```\n"
            "```sh everywhere\nls\n```\n"
            "```sh run\ntest -d \"$FIRMA_STATE_DIR/run/web-1\"\nfalse\n```\n"
            "```c fragment\n#include <firma_stack.h>\nfirma_string_free(NULL);\n```\n"
        )
        out = subprocess.run(
            [sys.executable, __file__, str(readme)], capture_output=True, text=True
        ).stdout
    ok = out.rstrip().endswith("1 passed, 5 failed") and out.count("FAIL: ") == 5
    print(out if not ok else "self-test: untagged, failing, broken and mis-tagged blocks fail")
    print(f"{int(ok)} passed, {int(not ok)} failed")
    return 0 if ok else 1


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if argv[1:]:
        files = [Path(a).resolve() for a in argv[1:]]
    else:
        listed = subprocess.run(
            ["git", "ls-files", "*README.md"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
        files = [ROOT / f for f in sorted(listed)]
    return 1 if check(files) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
