#!/usr/bin/env bash
# Keeps the documents true to the code; run by `make test-docs` (mk/docs.mk).
#
#  1. The contract names everything the code defines: every reason code,
#     error code, metric name and event kind (and every state, verdict and
#     gone reason) is a row of its table in docs/design.md ("Reason codes",
#     "Errors", "Metrics", "Events", "States", "Verdicts"), and every row of
#     those tables names something the code defines. The names are read
#     from the code itself, wherever it lives under src/: the serde names of
#     the enums (`rename_all`, `rename`) and their `as_str` matches, which
#     must agree; metric names are the "firma_…" string literals of the
#     files that write the exposition (those holding "# TYPE").
#  2. Every test SECURITY.md and docs/design.md cite exists: `module::name`,
#     `path::tests::name`, bare snake_case names in table rows, Go `TestX`,
#     C/Python `test_x` must be defined (`fn`, `def`, `func`, or a C
#     function) under tests/, src/, python/tests or bindings/go; a cited
#     path must exist; `conformance/<name>` must be a scenario file.
#  3. The test files docs/design.md, "Invariants" names exist
#     (`group/file.rs` is tests/group/file.rs), and every citation of a
#     section (`docs/design.md, "Trust"`, `design.md#trust`) anywhere in
#     the repository names a section that exists.
#  4. No file tracked by git refers to a tracker that is not in the
#     repository (the word issue followed by a number, or opening a
#     parenthesis): name the design.md section or the behaviour instead.
#     The check is repository-wide and lists every offender.
#
# Usage: scripts/check-design.sh [--design FILE] [--security FILE]
# (the options check another copy of a document, e.g. to prove the check
# fails). Ends with "N passed, N failed"; exits 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import os
import re
import subprocess
import sys

args = sys.argv[1:]
design_path, security_path = "docs/design.md", "SECURITY.md"
while args:
    opt = args.pop(0)
    if opt == "--design" and args:
        design_path = args.pop(0)
    elif opt == "--security" and args:
        security_path = args.pop(0)
    else:
        sys.exit(f"usage: scripts/check-design.sh [--design FILE] [--security FILE] (got {opt!r})")

passed = failed = 0


def report(name, problems):
    global passed, failed
    if problems:
        failed += 1
        print(f"FAIL - {name}")
        for p in problems:
            print(f"       {p}")
    else:
        passed += 1
        print(f"pass - {name}")


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def files_under(roots, exts):
    for root in roots:
        if os.path.isfile(root):
            yield root
            continue
        for d, dirs, names in os.walk(root):
            dirs[:] = [x for x in dirs if x not in ("target", "node_modules", ".venv", "__pycache__")]
            for n in sorted(names):
                if n.endswith(exts):
                    yield os.path.join(d, n)


RUST = {p: read(p) for p in files_under(["src"], (".rs",))}


# ---------------------------------------------------------------- the code

def block(text, start):
    """The text between the brace at or after `start` and its match."""
    i = text.index("{", start)
    depth = 0
    for j in range(i, len(text)):
        c = text[j]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
    raise ValueError("unbalanced braces")


def case(name, rule):
    if rule == "lowercase":
        return name.lower()
    if rule == "snake_case":
        return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()
    if rule is None:
        return name
    raise ValueError(f"rename_all = {rule!r} is not handled by this script")


def find_enum(name):
    """(file, serde attributes, body) of `pub enum NAME` under src/."""
    found = []
    pat = re.compile(r"((?:[ \t]*#\[[^\n]*\]\s*\n|[ \t]*///[^\n]*\n)*)[ \t]*pub enum " + name + r"\s*\{")
    for path, text in RUST.items():
        for m in pat.finditer(text):
            found.append((path, m.group(1), block(text, m.end() - 1)))
    return found


def serde_names(name):
    """The names an enum serializes to, by variant: {Variant: "name"}."""
    enums = find_enum(name)
    if len(enums) != 1:
        return None, f"expected one `pub enum {name}` under src/, found {len(enums)}"
    path, attrs, body = enums[0]
    m = re.search(r'rename_all\s*=\s*"([^"]+)"', attrs)
    rule = m.group(1) if m else None
    names, depth, rename = {}, 0, None
    for line in body.splitlines():
        s = line.strip()
        if depth == 0 and not s.startswith("//"):
            r = re.match(r'#\[serde\(.*\brename\s*=\s*"([^"]+)"', s)
            if r:
                rename = r.group(1)
            v = re.match(r"([A-Z][A-Za-z0-9]*)\b", s)
            if v:
                names[v.group(1)] = rename or case(v.group(1), rule)
                rename = None
        if not s.startswith("//"):
            depth += s.count("{") + s.count("(") - s.count("}") - s.count(")")
    if not names:
        return None, f"no variants found in `pub enum {name}` ({path})"
    return names, path


def as_str(name):
    """{Variant: "string"} from `fn as_str` of `impl NAME`, or None."""
    for path, text in RUST.items():
        for m in re.finditer(r"impl " + name + r"\s*\{", text):
            body = block(text, m.end() - 1)
            f = re.search(r"fn as_str\b", body)
            if f:
                fbody = block(body, f.end())
                return dict(re.findall(name + r'::(\w+)\s*=>\s*"([^"]*)"', fbody))
    return None


def codes(name, what):
    """The serialized names of enum NAME, cross-checked with its as_str."""
    names, where = serde_names(name)
    if names is None:
        return None, [f"{where}: update scripts/check-design.sh if {what} moved or changed form"]
    problems = []
    strs = as_str(name)
    if strs is not None and strs != names:
        for v in sorted(set(names) | set(strs)):
            if names.get(v) != strs.get(v):
                problems.append(
                    f"{name}::{v} serializes as {names.get(v)!r} but as_str says {strs.get(v)!r} ({where})")
    return set(names.values()), problems


def metric_names():
    """The "firma_…" literals of the files that write the exposition."""
    found = set()
    for path, text in RUST.items():
        if "# TYPE" in text or "# HELP" in text or "metric" in os.path.basename(path):
            found |= set(re.findall(r'"(firma_[a-z0-9_]+)"', text))
    return found


# ---------------------------------------------------------------- the contract

design = read(design_path)
sections = {}
for m in re.finditer(r"^## ([^\n]+)\n(.*?)(?=^## |\Z)", design, re.S | re.M):
    sections[m.group(1).strip()] = m.group(2)


def table_codes(section):
    text = sections.get(section)
    if text is None:
        return None
    return set(re.findall(r"^\|\s*`([^`]+)`\s*\|", text, re.M))


def contract(what, section, defined, extraction_problems, table=True):
    problems = list(extraction_problems)
    if defined is not None and not defined:
        problems.append(f"found no {what} in the code: update scripts/check-design.sh")
    documented = table_codes(section) if table else None
    if section not in sections:
        problems.append(f'{design_path} has no section "## {section}"')
    elif defined:
        text = sections[section]
        for c in sorted(defined):
            if table:
                ok = c in documented
            else:
                ok = f"`{c}`" in text or f'"{c}"' in text
            if not ok:
                problems.append(f'{what} `{c}` is in the code but not in {design_path}, "{section}"'
                                + (" (a table row `| `" + c + "` | …`)" if table else ""))
        if table:
            for c in sorted(documented - defined):
                problems.append(f'{design_path}, "{section}" documents {what} `{c}`, which the code does not define')
    report(f'{what}s of the code are the rows of {design_path}, "{section}"'
           + (f" ({len(defined)})" if defined else ""), problems)


reasons, p = codes("Reason", "the reason codes")
contract("reason code", "Reason codes", reasons, p)
errors, p = codes("ErrorCode", "the error codes")
contract("error code", "Errors", errors, p)
contract("metric", "Metrics", metric_names(), [])
events, p = codes("Event", "the watch events")
contract("event kind", "Events", events, p)
gone, p = codes("GoneReason", "the gone reasons")
contract("gone reason", "Events", gone, p, table=False)
states, p = codes("State", "the states")
contract("state", "States", states, p)
verdicts, p = codes("Verdict", "the verdicts")
contract("verdict", "Verdicts", verdicts, p)


# ---------------------------------------------------------------- cited tests

DEF_ROOTS = ["tests", "src", "python/tests", "bindings/go"]
defined_in = {}
DEF = re.compile(
    r"\bfn\s+(\w+)"                                   # Rust
    r"|\bmod\s+(\w+)"                                 # a Rust module
    r"|\bdef\s+(\w+)"                                 # Python
    r"|\bfunc\s+(?:\([^)]*\)\s*)?(\w+)"               # Go
    r"|^[A-Za-z_][\w \t\*]*?\b(\w+)\s*\([^;{]*\)\s*\{?\s*$",  # C
    re.M)
for path in files_under(DEF_ROOTS, (".rs", ".py", ".go", ".c", ".h")):
    for m in DEF.finditer(read(path)):
        name = next(g for g in m.groups() if g)
        defined_in.setdefault(name, set()).add(path)
ALL_DEFS = sorted(defined_in)

IDENT = r"[A-Za-z_]\w*"
# Bare test names: snake_case of four words or more in a table row, five
# anywhere (an API name such as `pid_start_ticks` is shorter).
SNAKE_TABLE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+){3,}$")
SNAKE_ANY = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+){4,}$")


def exists(name):
    """A definition whose name is `name`; `…` stands for any text."""
    if "…" not in name:
        return name in defined_in
    pat = re.compile("^" + ".*".join(re.escape(p) for p in name.split("…")) + "$")
    return any(pat.match(d) for d in ALL_DEFS)


def cited(doc):
    problems, count = [], 0
    text = read(doc)
    for lineno, line in enumerate(text.splitlines(), 1):
        in_table = line.lstrip().startswith("|")
        for tok in re.findall(r"`([^`\n]+)`", line):
            tok = tok.strip()
            if "<" in tok:                       # a placeholder, e.g. conformance/<name>
                continue
            where = f"{doc}:{lineno}"
            if tok.startswith("conformance/"):
                count += 1
                if not os.path.isfile(f"tests/conformance/scenarios/{tok[len('conformance/'):]}.json"):
                    problems.append(f"{where}: `{tok}`: no tests/conformance/scenarios/{tok[12:]}.json")
                continue
            if "::" in tok:
                parts = tok.split("::")
                if not all(re.fullmatch(IDENT, p) or "…" in p or "/" in p or p.endswith((".rs", ".c", ".py", ".go"))
                           for p in parts):
                    continue                     # not code ([fe80::1]:80 and the like)
                last = parts[-1]
                if last in ("name", "test_name"):
                    continue                     # the notation itself
                head = parts[0]
                if "/" in head or head.endswith((".rs", ".c", ".py", ".go")):
                    if "…" not in head and not any(os.path.exists(os.path.join(r, head)) for r in ("", "python/tests")):
                        count += 1
                        problems.append(f"{where}: `{tok}`: no file {head}")
                        continue
                if last == "tests" or not re.fullmatch(r"[a-z_…][a-z0-9_…]*|Test\w+", last):
                    continue                     # a module, or a type's variant (Meta::Fifo)
                count += 1
                if not exists(last):
                    problems.append(f"{where}: `{tok}`: no `fn {last}` (or def/func) under {', '.join(DEF_ROOTS)}")
                continue
            snake = SNAKE_TABLE if in_table else SNAKE_ANY
            if re.fullmatch(r"Test[A-Z]\w*|test_[a-z0-9_…]+", tok) or (
                    snake.match(tok) and not tok.startswith("firma_")):
                count += 1
                if not exists(tok):
                    problems.append(f"{where}: `{tok}`: no definition of {tok} under {', '.join(DEF_ROOTS)}")
    return count, problems


OTHER_DOCS = ["README.md", "BENCHMARKS.md", "python/README.md", "bindings/c/README.md",
              "bindings/go/README.md", "tests/conformance/README.md"]
for doc in [security_path, design_path] + [d for d in OTHER_DOCS if os.path.isfile(d)]:
    n, p = cited(doc)
    if n == 0 and doc in (security_path, design_path):
        p = [f"found no test cited in {doc}: update scripts/check-design.sh"] + p
    report(f"every test {doc} cites exists ({n} citations)", p)


# The test files and paths the invariants name exist.
problems, named = [], 0
inv = sections.get("Invariants", "")
for tok in re.findall(r"`([^`\n]+)`", inv):
    named += bool(re.fullmatch(r"[a-z_]+\.rs|[\w.-]+(/[\w.-]+)+", tok))
    # A test file, `<binary>/<module>.rs` (or a lone `<name>.rs`), is under
    # tests/; any other path is from the root of the repository.
    if re.fullmatch(r"([a-z_]+/)?[a-z_]+\.rs", tok) and not os.path.exists(tok):
        if not os.path.isfile(f"tests/{tok}"):
            problems.append(f'{design_path}, "Invariants": `{tok}`: no tests/{tok}')
    elif re.fullmatch(r"[\w.-]+(/[\w.-]+)+", tok) and not os.path.exists(tok):
        problems.append(f'{design_path}, "Invariants": `{tok}`: no such path')
if named == 0:
    problems.append(f'found no test file in {design_path}, "Invariants": update scripts/check-design.sh')
report(f'the test files {design_path}, "Invariants" names exist ({named})', problems)


# ---------------------------------------------------------------- section names

# `docs/design.md, "Section"` anywhere in the repository names a section
# that exists (code, tests and documents cite the contract that way).
problems, cites = [], 0
CITE = re.compile(r'design\.md[,:]? "([^"]+)"')
ANCHOR = re.compile(r"design\.md#([a-z0-9-]+)")
anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in sections}
for raw in subprocess.run(["git", "ls-files", "-z"], check=True, capture_output=True).stdout.split(b"\0"):
    path = raw.decode("utf-8", "surrogateescape")
    if not path or not os.path.isfile(path) or path == "scripts/check-design.sh":
        continue
    try:
        text = read(path)
    except OSError:
        continue
    for lineno, line in enumerate(text.splitlines(), 1):
        for name in CITE.findall(line):
            cites += 1
            if name not in sections:
                problems.append(f'{path}:{lineno}: cites {design_path}, "{name}": no such section')
        for a in ANCHOR.findall(line):
            cites += 1
            if a not in anchors:
                problems.append(f"{path}:{lineno}: links {design_path}#{a}: no such section")
if cites == 0:
    problems.append("found no citation of a section: update scripts/check-design.sh")
report(f'every citation of a {design_path} section names one that exists ({cites})', problems)


# ---------------------------------------------------------------- tracker references

# Written so that this file does not match itself.
TRACKER = re.compile(r"\bissues?[ \t]+[0-9]|[(]issues?\b", re.I)
HISTORY = re.compile(r"(^|/)(CHANGELOG|CHANGES|HISTORY|NEWS)[^/]*$", re.I)
tracked = subprocess.run(["git", "ls-files", "-z"], check=True, capture_output=True).stdout.split(b"\0")
offenders = []
for raw in tracked:
    path = raw.decode("utf-8", "surrogateescape")
    if not path or HISTORY.search(path) or not os.path.isfile(path):
        continue
    with open(path, "rb") as f:
        data = f.read()
    if b"\0" in data[:8192]:
        continue                                 # binary
    for lineno, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if TRACKER.search(line):
            offenders.append(f"{path}:{lineno}: {line.strip()[:100]}")
report("no tracked file refers to an issue tracker outside the repository"
       + (f" ({len(offenders)} lines: name the design.md section or the behaviour instead)" if offenders else ""),
       offenders)

print()
print(f"check-design: {'all clean' if failed == 0 else 'FAILURES'}")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
