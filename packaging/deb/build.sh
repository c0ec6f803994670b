#!/usr/bin/env bash
# `make deb`: the Debian packages, built with dpkg-deb over a staged
# `make install DESTDIR=... PREFIX=/usr` (no debian/ source package and no
# cargo-deb: the install image of mk/dist.mk is the one list of installed
# files, so `make install` and the packages cannot drift apart).
#
#   firma-stack_<v>_<arch>.deb          the `firma` CLI, its man pages and
#                                       completions, firma-metrics.service/.timer, firma-exporter.service
#   libfirma-stack<ABI>_<v>_<arch>.deb  libfirma_stack.so.<v> and its SONAME link
#   libfirma-stack-dev_<v>_<arch>.deb   header, .so link, .a, firma_stack.pc
#
# The split is Debian's for a shared library: the runtime package is named
# after the SONAME (libfirma_stack.so.<ABI> -> libfirma-stack<ABI>), ships a
# shlibs file and activates the ldconfig trigger; -dev depends on the exact
# runtime version. Dependencies on libc come from dpkg-shlibdeps.
#
# Variables (from mk/dist.mk): MAKE, OUT (directory for the .deb files),
# FIRMA_VERSION, FIRMA_ABI. Needs dpkg-dev (dpkg-shlibdeps, dpkg-architecture).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
: "${MAKE:=make}" "${OUT:=target/deb}" "${FIRMA_VERSION:?}" "${FIRMA_ABI:?}"

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
version=$FIRMA_VERSION
libpkg=libfirma-stack$FIRMA_ABI
maintainer="firma-stack maintainers <firma-stack@users.noreply.github.com>"
homepage=https://github.com/firma-stack/firma-stack

work=$(mktemp -d "${TMPDIR:-/tmp}/firma-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
img=$work/image
"$MAKE" -C "$root" --no-print-directory install DESTDIR="$img" PREFIX=/usr \
    LIBDIR="/usr/lib/$multiarch" ZSHCOMPDIR=/usr/share/zsh/vendor-completions >"$work/install.log" 2>&1 ||
    { cat "$work/install.log" >&2; echo "deb: make install DESTDIR=$img failed" >&2; exit 1; }

# move PKG PATH...: move image paths (relative to /) into package PKG's root.
move() {
    local pkg=$1 p
    shift
    for p in "$@"; do
        install -d "$work/$pkg/$(dirname "$p")"
        mv "$img/$p" "$work/$pkg/$p"
    done
}
libdir=usr/lib/$multiarch
move firma-stack usr/bin/firma usr/share/man/man1 usr/share/bash-completion \
    usr/share/zsh usr/share/fish usr/lib/systemd/system
move "$libpkg" "$libdir/libfirma_stack.so.$version" "$libdir/libfirma_stack.so.$FIRMA_ABI"
move libfirma-stack-dev "$libdir/libfirma_stack.so" "$libdir/libfirma_stack.a" \
    "$libdir/pkgconfig" usr/include/firma_stack.h
left=$(cd "$img" && find . \( -type f -o -type l \) -printf '%P\n')
[[ -z $left ]] || { echo "deb: installed files in no package: $left" >&2; exit 1; }

# Debian policy: shared libraries are not executable.
chmod 0644 "$work/$libpkg/$libdir/libfirma_stack.so.$version"
# Debian's places: compressed man pages, the defaults file (the units come
# from `make install`, at PREFIX/lib/systemd/system = /usr/lib/systemd/system).
gzip -9n "$work"/firma-stack/usr/share/man/man1/*.1
install -D -m 0644 packaging/deb/firma-metrics.default "$work/firma-stack/etc/default/firma-metrics"

# Each package's /usr/share/doc: copyright and changelog.
date_r=$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")
for pkg in firma-stack "$libpkg" libfirma-stack-dev; do
    doc=$work/$pkg/usr/share/doc/$pkg
    install -D -m 0644 packaging/deb/copyright "$doc/copyright"
    printf '%s\n' "firma-stack ($version) unstable; urgency=medium" "" \
        "  * Built from the firma-stack sources by make deb." "" \
        " -- $maintainer  $date_r" >"$work/changelog"
    gzip -9n -c "$work/changelog" >"$doc/changelog.gz"
    chmod 0644 "$doc/changelog.gz"
done

# dpkg-shlibdeps wants a debian/control in its working directory and the
# library's own shlibs to resolve libfirma_stack.so.<ABI>.
mkdir -p "$work/src/debian"
printf 'Source: firma-stack\n\nPackage: firma-stack\nArchitecture: any\n' >"$work/src/debian/control"
shlibs_line="libfirma_stack $FIRMA_ABI $libpkg (>= $version)"
depends() {
    (cd "$work/src" && dpkg-shlibdeps -O -S"$work/$libpkg" "$@" 2>/dev/null) | sed -n 's/^shlibs:Depends=//p'
}
bin_deps=$(depends "$work/firma-stack/usr/bin/firma")
lib_deps=$(depends "$work/$libpkg/$libdir/libfirma_stack.so.$version")

# control PKG FIELDS...: DEBIAN/control (plus md5sums) for PKG.
control() {
    local pkg=$1 size
    shift
    install -d -m 0755 "$work/$pkg/DEBIAN"
    size=$(du -sk --exclude=DEBIAN "$work/$pkg" | cut -f1)
    {
        echo "Package: $pkg"
        echo "Version: $version"
        echo "Architecture: $arch"
        echo "Maintainer: $maintainer"
        echo "Installed-Size: $size"
        printf '%s\n' "$@"
        echo "Homepage: $homepage"
    } >"$work/$pkg/DEBIAN/control"
    (cd "$work/$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort |
        xargs md5sum) >"$work/$pkg/DEBIAN/md5sums"
}
control firma-stack "Section: admin" "Priority: optional" "Depends: $bin_deps" \
    "Description: which agent-sandbox sidecars are alive, and cleanup of dead runs" \
    " The firma command lists the agent-sandbox sidecars of a runtime directory" \
    " with their state (running, unhealthy, stopped), probes their endpoints," \
    " collects the markers of runs that died, watches them change and stops" \
    " them safely. It also writes Prometheus metrics for the node_exporter" \
    " textfile collector (firma-metrics.timer) or serves them itself" \
    " (firma-exporter.service); neither is enabled on install."
echo /etc/default/firma-metrics >"$work/firma-stack/DEBIAN/conffiles"
control "$libpkg" "Section: libs" "Priority: optional" "Multi-Arch: same" "Depends: $lib_deps" \
    "Description: firma-stack sidecar markers library (C ABI, shared library)" \
    " The firma-stack library reads, probes and garbage-collects the markers" \
    " of agent-sandbox sidecars, watches them and stops them, behind a C ABI." \
    " ." \
    " This package contains the shared library."
echo "$shlibs_line" >"$work/$libpkg/DEBIAN/shlibs"
echo "activate-noawait ldconfig" >"$work/$libpkg/DEBIAN/triggers"
control libfirma-stack-dev "Section: libdevel" "Priority: optional" "Multi-Arch: same" \
    "Depends: $libpkg (= $version)" \
    "Description: firma-stack sidecar markers library (C ABI, development files)" \
    " The firma-stack library reads, probes and garbage-collects the markers" \
    " of agent-sandbox sidecars, watches them and stops them, behind a C ABI." \
    " ." \
    " This package contains the header, the static library and the pkg-config" \
    " file (firma_stack)."

mkdir -p "$OUT"
rm -f "$OUT"/*.deb
for pkg in firma-stack "$libpkg" libfirma-stack-dev; do
    find "$work/$pkg" -type d -exec chmod 0755 {} +
    chmod 0644 "$work/$pkg/DEBIAN/"*
    dpkg-deb --root-owner-group -Zxz --build "$work/$pkg" "$OUT/${pkg}_${version}_${arch}.deb" >/dev/null
    echo "deb: $OUT/${pkg}_${version}_${arch}.deb ($(($(stat -c %s "$OUT/${pkg}_${version}_${arch}.deb") / 1024)) KiB)"
done
