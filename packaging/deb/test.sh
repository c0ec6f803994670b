#!/usr/bin/env bash
# `make test-deb`: the packages of `make deb`, checked for real.
#  1. lintian on the three packages: no error (warnings are shown);
#  2. what each package carries (dpkg-deb -c);
#  3. installed with dpkg -i (then apt-get install -f) into a clean root:
#     this host's /usr, /etc and /var under overlay mounts in a private
#     mount namespace (the host is not touched; a debootstrap chroot would
#     download a whole system per run), after checking that no firma,
#     libfirma_stack or firma_stack.pc is there before. Then ldconfig knows
#     the SONAME, `pkg-config --libs firma_stack`, the example supervisor
#     built with pkg-config only runs against the packaged library,
#     `firma sidecar status` of the packaged CLI sees a real sidecar, the man
#     pages and completions are where Debian looks, and `dpkg --purge` of the
#     three leaves /usr, /etc and dpkg's database as they were.
# Closes with "N passed, N failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
: "${DEB_DIR:=target/deb}" "${FIRMA_VERSION:?}" "${FIRMA_ABI:?}"
# shellcheck source=scripts/checks.sh
. scripts/checks.sh
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
tmp=$(mktemp -d /tmp/firma-deb-test.XXXXXX)
sidecar_pid=
cleanup() {
    if [[ -n $sidecar_pid ]]; then kill -TERM "$sidecar_pid" 2>/dev/null; wait "$sidecar_pid" 2>/dev/null; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
libpkg=libfirma-stack$FIRMA_ABI
debs=("$root/$DEB_DIR/firma-stack_${FIRMA_VERSION}_$arch.deb" "$root/$DEB_DIR/${libpkg}_${FIRMA_VERSION}_$arch.deb"
    "$root/$DEB_DIR/libfirma-stack-dev_${FIRMA_VERSION}_$arch.deb")

# ---- 1. lintian -------------------------------------------------------------
section "lintian"
lintian --fail-on error --tag-display-limit 0 --display-level '>=warning' "${debs[@]}" >"$tmp/lintian.log" 2>&1
rc=$?
sed 's/^/[lintian] /' "$tmp/lintian.log"
errors=$(grep -c '^E: ' "$tmp/lintian.log")
if ((rc == 0 && errors == 0)); then
    pass "lintian: no error in the three packages ($(grep -c '^W: ' "$tmp/lintian.log") warnings, above)"
else
    fail "lintian: $errors errors (exit $rc, above)"
fi

# ---- 2. contents ------------------------------------------------------------
section "package contents"
contents() { dpkg-deb -c "$1" | awk '{ p = $6; sub(/^\./, "", p); print p }' | grep -v '/$' | LC_ALL=C sort; }
lib=/usr/lib/$multiarch
want_bin="/etc/default/firma-metrics /usr/bin/firma /usr/lib/systemd/system/firma-exporter.service
/usr/lib/systemd/system/firma-metrics.service
/usr/lib/systemd/system/firma-metrics.timer /usr/share/bash-completion/completions/firma
/usr/share/doc/firma-stack/changelog.gz /usr/share/doc/firma-stack/copyright
/usr/share/fish/vendor_completions.d/firma.fish /usr/share/man/man1/firma.1.gz
/usr/share/zsh/vendor-completions/_firma"
want_lib="$lib/libfirma_stack.so.$FIRMA_ABI $lib/libfirma_stack.so.$FIRMA_VERSION
/usr/share/doc/$libpkg/changelog.gz /usr/share/doc/$libpkg/copyright"
want_dev="$lib/libfirma_stack.a $lib/libfirma_stack.so $lib/pkgconfig/firma_stack.pc
/usr/include/firma_stack.h /usr/share/doc/libfirma-stack-dev/changelog.gz
/usr/share/doc/libfirma-stack-dev/copyright"
check_contents() {
    local deb=$1 want=$2 label=$3 have missing
    have=$(contents "$deb")
    missing=$(for f in $want; do grep -qx -- "$f" <<<"$have" || echo "$f"; done)
    if [[ -z $missing ]]; then
        pass "$label: $(wc -l <<<"$have") files, among them $(echo $want | wc -w) checked"
    else
        printf '%s\n' "$have" | sed "s/^/[$label] /"
        fail "$label lacks: $(echo $missing)"
    fi
}
check_contents "${debs[0]}" "$want_bin" firma-stack
check_contents "${debs[1]}" "$want_lib" "$libpkg"
check_contents "${debs[2]}" "$want_dev" libfirma-stack-dev
if [[ $(dpkg-deb -f "${debs[2]}" Depends) == "$libpkg (= $FIRMA_VERSION)" &&
    $(dpkg-deb -f "${debs[1]}" Depends) == *libc6* &&
    $(dpkg-deb --ctrl-tarfile "${debs[1]}" | tar xO ./shlibs) == "libfirma_stack $FIRMA_ABI $libpkg (>= $FIRMA_VERSION)" ]]; then
    pass "depends: -dev on $libpkg (= $FIRMA_VERSION), $libpkg on libc6 (dpkg-shlibdeps); shlibs names $libpkg"
else
    fail "package relations wrong: dev '$(dpkg-deb -f "${debs[2]}" Depends)', lib '$(dpkg-deb -f "${debs[1]}" Depends)'"
fi

# ---- 3. install, use, purge in a clean root ---------------------------------
section "dpkg -i in a clean root (overlay /usr, /etc, /var in a private mount namespace)"
runtime=$tmp/runtime
mkdir -p "$runtime"
start_sidecar "$root/target/release" "$runtime" deb-1
cat >"$tmp/inside.sh" <<'SH'
set -uo pipefail
tmp=$1 runtime=$2 root=$3 soname=$4 multiarch=$5 version=$6
shift 6
# The upper layers on a tmpfs: overlayfs refuses an upper directory on
# overlayfs (a container's root), and nothing of the install outlives it.
mkdir -p "$tmp/ov"
mount -t tmpfs tmpfs "$tmp/ov" || { echo "FAIL tmpfs on $tmp/ov"; exit 3; }
for d in usr etc var; do
    mkdir -p "$tmp/ov/$d/upper" "$tmp/ov/$d/work"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$tmp/ov/$d/upper,workdir=$tmp/ov/$d/work" "/$d" ||
        { echo "FAIL overlay on /$d"; exit 3; }
done
# A container image may tell dpkg to skip man pages and docs
# (path-exclude in /etc/dpkg/dpkg.cfg.d); this root is a full system, so
# those rules go (in the overlay only).
grep -l '^path-exclude' /etc/dpkg/dpkg.cfg.d/* 2>/dev/null | xargs -r rm -f
export PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive
unset PKG_CONFIG_PATH LD_LIBRARY_PATH
snapshot() { find /usr /etc /var/lib/dpkg/info -xdev -printf '%p %y %l\n' 2>/dev/null | LC_ALL=C sort; }
ok() { echo "ok - $*"; }
bad() { echo "FAIL - $*"; }
if command -v firma >/dev/null || pkg-config --exists firma_stack || ldconfig -p | grep -q libfirma_stack; then
    bad "the root is not clean: firma, firma_stack.pc or libfirma_stack already there"
else
    ok "clean before: no firma, no firma_stack.pc, no libfirma_stack in ldconfig"
fi
snapshot >"$tmp/before.txt"
if dpkg -i "$@" >"$tmp/dpkg-i.log" 2>&1 && apt-get install -f -y -qq >>"$tmp/dpkg-i.log" 2>&1; then
    ok "dpkg -i of the three packages, apt-get install -f: $(dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\n' firma-stack libfirma-stack-dev "libfirma-stack*" 2>/dev/null | tr '\n' ';')"
else
    cat "$tmp/dpkg-i.log"; bad "dpkg -i failed"
fi
# /lib is /usr/lib on a merged-/usr system: the loader may name either.
if ldconfig -p | grep -Eq "$soname .*=> (/usr)?/lib/$multiarch/$soname\$"; then
    ok "ldconfig knows $soname in /usr/lib/$multiarch (the trigger ran)"
else
    bad "ldconfig -p lacks $soname"
fi
libs=$(pkg-config --libs firma_stack | xargs)
cflags=$(pkg-config --cflags firma_stack | xargs)
if [[ $libs == "-lfirma_stack" && -z ${cflags// /} && $(pkg-config --modversion firma_stack) == [0-9]* ]]; then
    ok "pkg-config --libs firma_stack: '$libs' (system libdir), --cflags empty (/usr/include)"
else
    bad "pkg-config: libs '$libs' cflags '$cflags'"
fi
cd "$root"
# shellcheck disable=SC2046
if cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror bindings/c/status.c -o "$tmp/status" $(pkg-config --cflags --libs firma_stack jansson); then
    resolved=$(ldd "$tmp/status" | awk -v s="$soname" '$1 == s {print $3}')
    out=$(cd / && "$tmp/status" --runtime-dir "$runtime" get deb-1 2>&1)
    if [[ $(realpath "$resolved") == "/usr/lib/$multiarch/libfirma_stack.so.$version" && $out == *deb-1*running* ]]; then
        ok "a C program built with pkg-config only runs against $resolved: $(tail -n1 <<<"$out" | tr -s ' ')"
    else
        echo "$out"; bad "the C program: resolved '$resolved'"
    fi
else
    bad "bindings/c/status.c does not build against the packages"
fi
out=$(cd / && firma --runtime-dir "$runtime" sidecar status 2>&1)
if [[ $(command -v firma) == /usr/bin/firma && $out == *deb-1*running* ]]; then
    ok "/usr/bin/firma sidecar status sees the live sidecar: $(tail -n1 <<<"$out" | tr -s ' ')"
else
    echo "$out"; bad "firma sidecar status from the package"
fi
if [[ $(man -w firma 2>/dev/null) == /usr/share/man/man1/firma.1.gz ]] &&
    MANWIDTH=80 man firma-sidecar-status 2>/dev/null | grep -q SYNOPSIS &&
    bash -c 'source /usr/share/bash-completion/completions/firma && complete -p firma' >/dev/null 2>&1; then
    ok "man firma / man firma-sidecar-status render, the bash completion loads"
else
    bad "man pages or completion not usable"
fi
if dpkg --purge firma-stack libfirma-stack-dev "$(dpkg-query -W -f='${Package}\n' 'libfirma-stack[0-9]*' | head -n1)" >"$tmp/purge.log" 2>&1; then
    snapshot >"$tmp/after.txt"
    if diff "$tmp/before.txt" "$tmp/after.txt" >"$tmp/left.diff"; then
        ok "dpkg --purge: /usr, /etc and dpkg's database as before the install"
    else
        cat "$tmp/left.diff"; bad "dpkg --purge left differences (above)"
    fi
else
    cat "$tmp/purge.log"; bad "dpkg --purge failed"
fi
SH
unshare --mount --propagation private bash "$tmp/inside.sh" "$tmp" "$runtime" "$root" \
    "libfirma_stack.so.$FIRMA_ABI" "$multiarch" "$FIRMA_VERSION" "${debs[@]}" >"$tmp/inside.log" 2>&1
rc=$?
while IFS= read -r line; do
    case $line in
        "ok - "*) pass "${line#ok - }" ;;
        "FAIL - "*) fail "${line#FAIL - }" ;;
        *) echo "[clean root] $line" ;;
    esac
done <"$tmp/inside.log"
((rc == 0)) || fail "the clean-root run exited $rc"
if [[ ! -e /usr/bin/firma && ! -e $lib/libfirma_stack.so.$FIRMA_ABI ]] && ! dpkg-query -W firma-stack >/dev/null 2>&1; then
    pass "the host itself is untouched (no /usr/bin/firma, no packaged library, dpkg does not know firma-stack)"
else
    fail "the install leaked onto the host"
fi
finish test-deb
