#!/usr/bin/env bash
# The install image and its installation (run by mk/dist.mk; see there).
#
#   dist.sh stage      build target/dist/stage: every installed file at its
#                      final path ($PREFIX/...), stripped / generated
#   dist.sh install    copy each staged file to $DESTDIR<path>
#   dist.sh uninstall  remove each staged path from $DESTDIR, then the
#                      directories below $PREFIX that this left empty
#
# The variables (STAGE, PREFIX, LIBDIR, ...) come from mk/dist.mk.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${STAGE:?}" "${PREFIX:?}" "${BINDIR:?}" "${LIBDIR:?}" "${INCLUDEDIR:?}" "${MANDIR:?}"
: "${BASHCOMPDIR:?}" "${ZSHCOMPDIR:?}" "${FISHCOMPDIR:?}" "${FIRMA_VERSION:?}" "${FIRMA_SONAME:?}"
: "${SYSTEMDUNITDIR:=$PREFIX/lib/systemd/system}"
: "${STRIP:=strip}" "${RELEASE_DIR:=target/release}" "${HEADER:=include/firma_stack.h}" "${DESTDIR:=}"

for d in "$PREFIX" "$BINDIR" "$LIBDIR" "$INCLUDEDIR" "$MANDIR" "$BASHCOMPDIR" "$ZSHCOMPDIR" "$FISHCOMPDIR" \
    "$SYSTEMDUNITDIR"; do
    [[ $d == /* ]] || { echo "dist: install directories must be absolute paths, got '$d' (PREFIX=$PREFIX)" >&2; exit 2; }
done

# Every staged path (files and links), relative to the stage root, i.e. the
# absolute path it is installed at, sorted.
staged_paths() {
    (cd "$STAGE" && find . -mindepth 1 \( -type f -o -type l \) -printf '/%P\n' | LC_ALL=C sort)
}

stage() {
    local rel=$RELEASE_DIR root=$STAGE lib
    for f in "$rel/libfirma_stack.so" "$rel/libfirma_stack.a" "$rel/firma" "$HEADER"; do
        [[ -f $f ]] || { echo "dist: $f missing (run make build)" >&2; exit 1; }
    done
    rm -rf "$root"
    lib=$root$LIBDIR
    install -d "$lib/pkgconfig" "$root$INCLUDEDIR" "$root$BINDIR" "$root$MANDIR/man1" \
        "$root$BASHCOMPDIR" "$root$ZSHCOMPDIR" "$root$FISHCOMPDIR" "$root$SYSTEMDUNITDIR"
    # The release profile keeps debug info; what is installed has none.
    # The shared library keeps its dynamic symbols (--strip-unneeded), the
    # archive its symbol table (--strip-debug).
    "$STRIP" --strip-unneeded -o "$lib/libfirma_stack.so.$FIRMA_VERSION" "$rel/libfirma_stack.so"
    chmod 0755 "$lib/libfirma_stack.so.$FIRMA_VERSION"
    ln -s "libfirma_stack.so.$FIRMA_VERSION" "$lib/$FIRMA_SONAME"
    ln -s "$FIRMA_SONAME" "$lib/libfirma_stack.so"
    "$STRIP" --strip-debug -o "$lib/libfirma_stack.a" "$rel/libfirma_stack.a"
    chmod 0644 "$lib/libfirma_stack.a"
    install -m 0644 "$HEADER" "$root$INCLUDEDIR/firma_stack.h"
    # libdir and includedir follow ${prefix} when they are under it, so a
    # relocated prefix (pkg-config --define-prefix, a redefined prefix) moves them.
    local pc_libdir=$LIBDIR pc_includedir=$INCLUDEDIR
    [[ $LIBDIR == "$PREFIX"/* ]] && pc_libdir='${prefix}'${LIBDIR#"$PREFIX"}
    [[ $INCLUDEDIR == "$PREFIX"/* ]] && pc_includedir='${prefix}'${INCLUDEDIR#"$PREFIX"}
    sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@LIBDIR@|$pc_libdir|g" \
        -e "s|@INCLUDEDIR@|$pc_includedir|g" -e "s|@VERSION@|$FIRMA_VERSION|g" \
        firma_stack.pc.in >"$lib/pkgconfig/firma_stack.pc"
    chmod 0644 "$lib/pkgconfig/firma_stack.pc"
    "$STRIP" -o "$root$BINDIR/firma" "$rel/firma"
    chmod 0755 "$root$BINDIR/firma"
    # Generated from the clap definition by the command itself.
    "$rel/firma" manpages "$root$MANDIR/man1" >/dev/null
    "$rel/firma" completions bash >"$root$BASHCOMPDIR/firma"
    "$rel/firma" completions zsh >"$root$ZSHCOMPDIR/_firma"
    "$rel/firma" completions fish >"$root$FISHCOMPDIR/firma.fish"
    chmod 0644 "$root$MANDIR/man1/"*.1 "$root$BASHCOMPDIR/firma" "$root$ZSHCOMPDIR/_firma" \
        "$root$FISHCOMPDIR/firma.fish"
    # The shipped units name /usr/bin/firma; installed, they name this BINDIR's.
    local u
    for u in firma-exporter.service firma-metrics.service firma-metrics.timer; do
        sed "s#/usr/bin/firma#$BINDIR/firma#g" "packaging/systemd/$u" >"$root$SYSTEMDUNITDIR/$u"
        chmod 0644 "$root$SYSTEMDUNITDIR/$u"
    done
}

install_image() {
    local p src dst n=0
    while IFS= read -r p; do
        src=$STAGE$p
        dst=$DESTDIR$p
        install -d "$(dirname "$dst")"
        if [[ -L $src ]]; then
            ln -sfn "$(readlink "$src")" "$dst"
        else
            install -m "$(stat -c %a "$src")" "$src" "$dst"
        fi
        echo "  $dst"
        n=$((n + 1))
    done < <(staged_paths)
    echo "installed firma-stack $FIRMA_VERSION (SONAME $FIRMA_SONAME): $n files under ${DESTDIR}${PREFIX}"
}

uninstall_image() {
    local p dst n=0
    while IFS= read -r p; do
        dst=$DESTDIR$p
        if [[ -e $dst || -L $dst ]]; then
            rm -f "$dst"
            echo "  removed $dst"
            n=$((n + 1))
        fi
    done < <(staged_paths)
    # Then the directories that held them, deepest first, when that left them
    # empty: every parent of a staged path below $PREFIX (never $PREFIX
    # itself, nor anything outside it). A directory with other files stays.
    local d nd=0
    while IFS= read -r d; do
        if [[ -d $DESTDIR$d ]] && rmdir "$DESTDIR$d" 2>/dev/null; then
            echo "  removed $DESTDIR$d/"
            nd=$((nd + 1))
        fi
    done < <(staged_paths | while IFS= read -r p; do
        p=$(dirname "$p")
        while [[ $p == "$PREFIX"/* ]]; do echo "$p"; p=$(dirname "$p"); done
    done | LC_ALL=C sort -u | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-)
    echo "uninstalled firma-stack: $n files and $nd empty directories removed under ${DESTDIR}${PREFIX}"
}

case ${1:-} in
    stage) stage ;;
    install) install_image ;;
    uninstall) uninstall_image ;;
    *) echo "usage: dist.sh stage|install|uninstall" >&2; exit 2 ;;
esac
