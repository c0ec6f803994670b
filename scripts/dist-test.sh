#!/usr/bin/env bash
# `make test-dist`: what `make install` / `make uninstall` do, checked the
# way a packager or a user would see it.
#  1. `make install PREFIX=<empty tmp>`: exactly the documented files, the
#     sizes of the stripped artifacts, the SONAME links, the installed
#     `firma` runs;
#  2. the completion scripts: syntax (bash -n, zsh -n, fish -n) and real
#     completions typed in a terminal (tmux): subcommands, sandbox ids from
#     the runtime directory, signal names;
#  3. every man page renders with groff/man without a warning;
#  4. `make uninstall` with the same PREFIX leaves no file, link or
#     directory (the directories it emptied go too; a foreign file stays);
#  5. the same with DESTDIR (a staged package root), the .pc naming PREFIX
#     and deriving libdir/includedir from ${prefix};
#  6. `make build` does not touch Python.
# Closes with "N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${MAKE:=make}"

scratch=$(mktemp -d /tmp/firma-dist-test.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
# shellcheck source=scripts/checks.sh
. scripts/checks.sh

# Files and links under DIR, relative, sorted.
tree() { (cd "$1" && find . -mindepth 1 \( -type f -o -type l \) -printf '%P\n' | LC_ALL=C sort); }

# ---- 1. install into an empty prefix ----------------------------------------
section "make install PREFIX=<empty tmp prefix>"
prefix=$scratch/prefix
mkdir "$prefix"
if $MAKE --no-print-directory install PREFIX="$prefix" >"$scratch/install.log" 2>&1; then
    pass "make install PREFIX=$prefix"
else
    cat "$scratch/install.log"
    fail "make install failed"
fi
version=$(sed -n 's/^Version: //p' "$prefix/lib/pkgconfig/firma_stack.pc" 2>/dev/null)
soname=$(readelf -d "$prefix/lib/libfirma_stack.so.$version" 2>/dev/null | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
manpages=$(cd "$prefix/share/man/man1" 2>/dev/null && ls)
expected=$(
    {
        printf '%s\n' bin/firma include/firma_stack.h lib/libfirma_stack.a lib/libfirma_stack.so \
            "lib/libfirma_stack.so.$version" "lib/$soname" lib/pkgconfig/firma_stack.pc \
            share/bash-completion/completions/firma share/zsh/site-functions/_firma \
            share/fish/vendor_completions.d/firma.fish lib/systemd/system/firma-exporter.service \
            lib/systemd/system/firma-metrics.service lib/systemd/system/firma-metrics.timer
        for m in $manpages; do echo "share/man/man1/$m"; done
    } | LC_ALL=C sort
)
if [[ -n $version && $soname == libfirma_stack.so.* && $(tree "$prefix") == "$expected" ]]; then
    pass "installed exactly: bin/firma, lib (.so.$version, $soname, .so, .a, pkgconfig/firma_stack.pc), include, man pages, 3 completions, 3 systemd units"
else
    diff <(echo "$expected") <(tree "$prefix")
    fail "installed files differ from the documented layout (diff: expected vs installed)"
fi
want_pages="firma.1 firma-completions.1 firma-sidecar.1 firma-sidecar-gc.1 firma-sidecar-get.1 firma-sidecar-status.1"
missing=
for m in $want_pages; do [[ -f $prefix/share/man/man1/$m ]] || missing="$missing $m"; done
if [[ -z $missing ]] && ! grep -q manpages <<<"$manpages"; then
    pass "man pages: firma.1 and one per subcommand ($(echo $manpages))"
else
    fail "man pages missing:$missing (have: $(echo $manpages))"
fi
units=$prefix/lib/systemd/system
if grep -qx "ExecStart=$prefix/bin/firma --runtime-dir /run/firma sidecar exporter --listen 127.0.0.1:9847" \
    "$units/firma-exporter.service" && grep -q "^ExecStart=$prefix/bin/firma " "$units/firma-metrics.service" &&
    ! grep -q /usr/bin/firma "$units"/firma-*; then
    pass "the installed units run the installed firma ($prefix/bin/firma)"
else
    grep -H ExecStart "$units"/firma-* 2>&1
    fail "the installed units do not name $prefix/bin/firma"
fi
lib=$prefix/lib
if [[ $(readlink "$lib/libfirma_stack.so") == "$soname" && $(readlink "$lib/$soname") == "libfirma_stack.so.$version" ]]; then
    pass "libfirma_stack.so -> $soname -> libfirma_stack.so.$version"
else
    fail "SONAME links wrong"
fi

# size FILE LIMIT_BYTES LABEL
size() {
    local bytes
    bytes=$(stat -c %s "$1" 2>/dev/null || echo 0)
    if ((bytes > 0 && bytes <= $2)); then
        pass "$3 is $((bytes / 1024)) KiB (limit $(($2 / 1024)) KiB)"
    else
        fail "$3 is $((bytes / 1024)) KiB, over the limit of $(($2 / 1024)) KiB"
    fi
}
size "$lib/libfirma_stack.so.$version" $((2 * MiB)) "installed libfirma_stack.so.$version"
size "$prefix/bin/firma" $((4 * MiB)) "installed firma"
# DWARF sections (.debug_gdb_scripts is loaded data, not debug info).
debug_sections() { objdump -h "$1" 2>/dev/null | grep -Ec ' \.debug_(info|line|abbrev|str|ranges|rnglists|loc|loclists|aranges|frame) ' || true; }
n=$(debug_sections "$lib/libfirma_stack.a")
if [[ $n == 0 ]] && nm "$lib/libfirma_stack.a" 2>/dev/null | grep -c ' T firma_sidecar_list$' >/dev/null; then
    pass "installed libfirma_stack.a has no debug sections and keeps its symbols ($(($(stat -c %s "$lib/libfirma_stack.a") / MiB)) MiB)"
else
    fail "installed libfirma_stack.a: $n debug sections, or firma_sidecar_list missing"
fi
for f in "$lib/libfirma_stack.so.$version" "$prefix/bin/firma"; do
    if [[ $(debug_sections "$f") == 0 ]]; then
        pass "$(basename "$f") has no debug sections"
    else
        fail "$(basename "$f") still has debug sections"
    fi
done
if out=$(cd / && "$prefix/bin/firma" --version) && [[ $out == "firma $version" ]] &&
    runtime=$(mktemp -d "$scratch/rt.XXXX") && "$prefix/bin/firma" --runtime-dir "$runtime" sidecar status --json | grep -qx '\[\]'; then
    pass "installed firma runs: '$out', status --json on an empty runtime dir is []"
else
    fail "installed firma does not run ($out)"
fi

# ---- 2. completions ---------------------------------------------------------
section "completion scripts"
bash_c=$prefix/share/bash-completion/completions/firma
zsh_c=$prefix/share/zsh/site-functions/_firma
fish_c=$prefix/share/fish/vendor_completions.d/firma.fish
if bash -n "$bash_c"; then pass "bash -n $bash_c"; else fail "bash completion has a syntax error"; fi
# Real completions, typed into a real terminal (tmux) for bash and zsh and
# asked of fish: subcommands, sandbox ids read from the runtime directory
# typed on the line, and signal names. The scripts call back the installed
# `firma` (dynamic completion), so its bin/ is first on PATH.
comp_rt=$scratch/comp-rt
mkdir -p "$comp_rt/run/alpha" "$comp_rt/run/beta-1" "$comp_rt/run/.tmp-1-1"
comp_env=(env -i "PATH=$prefix/bin:/usr/bin:/bin" "HOME=$scratch" TERM=xterm)
# Types LINE then Tab into SHELL (set up first with SETUP) and prints the
# line as the terminal shows it once it holds WANT, or after 30 s (the
# machine may be busy; a completion takes milliseconds). tmux drops
# trailing blanks. One tmux server of our own, kept up by a session that
# sleeps: a server whose last session ends exits, and the next session
# could race it.
comp_tmux=(tmux -L "firma-comp-$$")
typed_tab() {
    local shell=$1 setup=$2 line=$3 want=$4 session out=
    session="case-$((++comp_case))"
    "${comp_tmux[@]}" new-session -d -s "$session" -x 220 -y 40 "${comp_env[*]} $shell" || return 1
    # The line is typed only once the setup has run.
    "${comp_tmux[@]}" send-keys -t "$session" "$setup; echo SET''UP-DONE" Enter
    for _ in $(seq 150); do
        "${comp_tmux[@]}" capture-pane -p -t "$session" | grep -qx 'SETUP-DONE' && break
        sleep 0.2
    done
    "${comp_tmux[@]}" send-keys -t "$session" "$line" Tab
    for _ in $(seq 150); do
        sleep 0.2
        out=$("${comp_tmux[@]}" capture-pane -p -t "$session" | grep -F 'firma ' | tail -n 1)
        [[ $out == *"$want"* ]] && break
    done
    "${comp_tmux[@]}" kill-session -t "$session" 2>/dev/null
    printf '%s\n' "$out"
}
comp_case=0
if command -v tmux >/dev/null; then
    "${comp_tmux[@]}" new-session -d -s keeper "sleep 600"
    for case in \
        "firma si|firma sidecar" \
        "firma --runtime-dir $comp_rt sidecar get be|get beta-1" \
        "firma --runtime-dir $comp_rt sidecar stop al|stop alpha" \
        "firma sidecar stop --signal KI|--signal KILL" \
        "firma sidecar stop --signal sigte|--signal SIGTERM"; do
        line=${case%%|*} want=${case#*|}
        got=$(typed_tab "bash --norc --noprofile" "PS1='$ '; source $bash_c" "$line" "$want")
        if [[ $got == *"$want"* ]]; then
            pass "bash in a terminal: '$line<Tab>' -> '$want'"
        else
            fail "bash in a terminal: '$line<Tab>' gave '$got', not '$want'"
        fi
    done
    if command -v zsh >/dev/null; then
        got=$(typed_tab "zsh -f" "PS1='$ '; autoload -U compinit; compinit -u; source $zsh_c" \
            "firma --runtime-dir $comp_rt sidecar check be" "check beta-1")
        if [[ $got == *"check beta-1"* ]]; then
            pass "zsh in a terminal: a sandbox id completed from the runtime directory"
        else
            fail "zsh in a terminal: 'check be<Tab>' gave '$got', not 'check beta-1'"
        fi
    fi
    "${comp_tmux[@]}" kill-server 2>/dev/null
else
    fail "tmux is not installed (make dist-test-tools installs it): completion in a terminal NOT checked"
fi
if command -v zsh >/dev/null; then
    if zsh -n "$zsh_c"; then pass "zsh -n $zsh_c"; else fail "zsh completion has a syntax error"; fi
else
    fail "zsh is not installed (make dist-test-tools installs it): zsh completion NOT checked"
fi
if command -v fish >/dev/null; then
    if fish --no-execute "$fish_c"; then pass "fish --no-execute $fish_c"; else fail "fish completion has a syntax error"; fi
    # Read whole before grep: `grep -q` leaving early would break fish's pipe.
    fish_subs=$("${comp_env[@]}" fish -c "source $fish_c; complete -C 'firma sidecar '" 2>&1)
    if grep -q '^status' <<<"$fish_subs"; then
        pass "fish completes 'firma sidecar ' with status"
    else
        fail "fish completion does not offer status after 'firma sidecar '"
    fi
    fish_ids=$("${comp_env[@]}" fish -c "source $fish_c; complete -C 'firma --runtime-dir $comp_rt sidecar stop '" 2>&1 |
        grep -v '^-' | cut -f1 | tr '\n' ' ')
    if [[ $fish_ids == "alpha beta-1 " ]]; then
        pass "fish completes sandbox ids from the runtime directory: $fish_ids"
    else
        fail "fish offers '$fish_ids' as sandbox ids, not 'alpha beta-1 '"
    fi
else
    fail "fish is not installed (make dist-test-tools installs it): fish completion NOT checked"
fi

# ---- 3. man pages -----------------------------------------------------------
section "man pages render without warnings"
for page in "$prefix"/share/man/man1/*.1; do
    name=$(basename "$page")
    warn=$({ groff -man -Tutf8 -ww -z "$page"; } 2>&1)
    rendered=$(MANWIDTH=80 man --warnings -l "$page" 2>"$scratch/man.err" | col -b)
    if [[ -z $warn && ! -s $scratch/man.err && $rendered == *NAME*SYNOPSIS* ]]; then
        pass "$name renders (groff -ww, man --warnings) without warnings"
    else
        printf '%s\n' "$warn"
        cat "$scratch/man.err"
        fail "$name: groff/man warnings (above) or no NAME/SYNOPSIS"
    fi
done
top=$(MANWIDTH=80 man -l "$prefix/share/man/man1/firma.1" 2>/dev/null | col -b)
if [[ $top == *"EXIT STATUS"* && $top == *firma-sidecar-status* && $top == *--runtime-dir* ]]; then
    pass "firma.1 has the options, EXIT STATUS and SEE ALSO the subcommand pages"
else
    printf '%s\n' "$top"
    fail "firma.1 lacks options, EXIT STATUS or SEE ALSO"
fi

# ---- 4. uninstall -----------------------------------------------------------
section "make uninstall PREFIX=<same>"
if $MAKE --no-print-directory uninstall PREFIX="$prefix" >"$scratch/uninstall.log" 2>&1; then
    left=$(cd "$prefix" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort)
    if [[ -z $left ]]; then
        pass "make uninstall left no file, link or directory in $prefix"
    else
        printf '%s\n' "$left"
        fail "make uninstall left files behind (above)"
    fi
else
    cat "$scratch/uninstall.log"
    fail "make uninstall failed"
fi
# Something that is not ours stays.
mkdir -p "$prefix/lib" && echo keep >"$prefix/lib/other.txt"
$MAKE --no-print-directory install PREFIX="$prefix" >/dev/null 2>&1
$MAKE --no-print-directory uninstall PREFIX="$prefix" >/dev/null 2>&1
if [[ $(cd "$prefix" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) == $'lib\nlib/other.txt' ]]; then
    pass "uninstall removes only what install put there (a foreign file stays)"
else
    tree "$prefix"
    fail "uninstall touched a foreign file or left ours"
fi

# ---- 5. DESTDIR -------------------------------------------------------------
section "make install DESTDIR=<root> PREFIX=/opt/firma-stack"
dest=$scratch/destdir
if $MAKE --no-print-directory install DESTDIR="$dest" PREFIX=/opt/firma-stack >"$scratch/destdir.log" 2>&1 &&
    [[ $(tree "$dest") == "$(sed 's|^|opt/firma-stack/|' <<<"$expected")" ]] &&
    grep -qx 'prefix=/opt/firma-stack' "$dest/opt/firma-stack/lib/pkgconfig/firma_stack.pc" &&
    grep -qx 'libdir=${prefix}/lib' "$dest/opt/firma-stack/lib/pkgconfig/firma_stack.pc" &&
    grep -qx 'includedir=${prefix}/include' "$dest/opt/firma-stack/lib/pkgconfig/firma_stack.pc" &&
    [[ $(PKG_CONFIG_PATH=$dest/opt/firma-stack/lib/pkgconfig pkg-config --define-variable=prefix=/elsewhere \
        --cflags --libs firma_stack | xargs) == "-I/elsewhere/include -L/elsewhere/lib -lfirma_stack" ]]; then
    pass "DESTDIR: the same files under \$DESTDIR/opt/firma-stack, the .pc names /opt/firma-stack and derives libdir/includedir from \${prefix}"
else
    cat "$scratch/destdir.log"
    tree "$dest"
    fail "install with DESTDIR wrong"
fi
if $MAKE --no-print-directory uninstall DESTDIR="$dest" PREFIX=/opt/firma-stack >/dev/null 2>&1 &&
    [[ $(cd "$dest" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) == $'opt\nopt/firma-stack' ]]; then
    pass "uninstall with the same DESTDIR/PREFIX leaves only the prefix directory itself"
else
    fail "uninstall with DESTDIR left files"
fi
if $MAKE --no-print-directory install PREFIX=relative/dir >"$scratch/rel.log" 2>&1; then
    fail "install accepted a relative PREFIX"
elif grep -q "must be absolute paths, got 'relative/dir'" "$scratch/rel.log"; then
    pass "a relative PREFIX is refused with a one-line error naming it"
else
    cat "$scratch/rel.log"
    fail "relative PREFIX refused without a clear message"
fi

# ---- 6. make build stays out of Python ---------------------------------------
section "make build does not touch Python"
plan=$($MAKE --no-print-directory -n build 2>&1)
if grep -Eiq 'venv|maturin|pip|python' <<<"$plan"; then
    grep -Ei 'venv|maturin|pip|python' <<<"$plan"
    fail "make build would run Python steps (above)"
else
    pass "make -n build runs no venv/pip/maturin step"
fi

finish test-dist
