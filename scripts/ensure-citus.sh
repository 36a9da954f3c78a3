#!/bin/sh
# Citus for `make test-citus`, installed once into the PostgreSQL the tests use.
#
# Neither Debian nor PyPI ships Citus, so when the extension is missing this builds it from
# the released source: a tarball (or an unpacked source tree) named by EXECSTORE_CITUS_SOURCE,
# by default the vendored ../shared/vendor/citus-13.2.2.tar.gz beside the repository's main
# checkout. Nothing is built when citus.so and citus.control are already installed (the PGDG
# packages, or a build of your own), so such a machine needs nothing vendored.
#
# Settings (environment):
#   PG_MAJOR                    PostgreSQL major version (15)
#   PG_CONFIG                   its pg_config (/usr/lib/postgresql/$PG_MAJOR/bin/pg_config)
#   EXECSTORE_CITUS_SOURCE      tarball or source directory to build from
#   EXECSTORE_CITUS_SHA256      expected sha256 of that tarball (checked for the vendored one
#                               always; for another tarball only when set)
#   EXECSTORE_CITUS_BUILD_DIR   where it is unpacked and built (~/.cache/execstore/<name>)
set -eu

PG_MAJOR="${PG_MAJOR:-15}"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config}"
VENDORED_NAME="citus-13.2.2.tar.gz"
VENDORED_SHA256="dd2453caec20a830e5e63f1def5c5a98cb6f57ae510407cdcd800916fcdab430"
BUILD_DEPS="postgresql-server-dev-${PG_MAJOR} liblz4-dev libzstd-dev libkrb5-dev libselinux1-dev libxslt1-dev libpam0g-dev libreadline-dev"

say() { echo "ensure-citus: $*"; }
die() { echo "ensure-citus: error: $*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

# --- already there? -----------------------------------------------------------------------
if [ ! -x "$PG_CONFIG" ]; then
    PG_CONFIG_FOUND="$(command -v pg_config || true)"
    [ -n "$PG_CONFIG_FOUND" ] || die "no pg_config for PostgreSQL ${PG_MAJOR} (looked for $PG_CONFIG); install postgresql-${PG_MAJOR}"
    PG_CONFIG="$PG_CONFIG_FOUND"
fi
PKGLIBDIR="$("$PG_CONFIG" --pkglibdir)"
EXTDIR="$("$PG_CONFIG" --sharedir)/extension"
if [ -f "$PKGLIBDIR/citus.so" ] && [ -f "$EXTDIR/citus.control" ]; then
    say "citus is installed ($PKGLIBDIR/citus.so, $(sed -n "s/^default_version = '\(.*\)'/\1/p" "$EXTDIR/citus.control")); nothing to do"
    exit 0
fi

# --- the source ---------------------------------------------------------------------------
REPO="$(cd "$(dirname "$0")/.." && pwd)"
if [ -n "${EXECSTORE_CITUS_SOURCE:-}" ]; then
    SOURCE="$EXECSTORE_CITUS_SOURCE"
    EXPECTED_SHA256="${EXECSTORE_CITUS_SHA256:-}"
else
    # ../shared/vendor beside the checkout; from a git worktree, beside the main checkout.
    SOURCE="$REPO/../shared/vendor/$VENDORED_NAME"
    if [ ! -e "$SOURCE" ] && command -v git >/dev/null 2>&1; then
        COMMON="$(git -C "$REPO" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)"
        if [ -n "$COMMON" ] && [ -e "$(dirname "$COMMON")/../shared/vendor/$VENDORED_NAME" ]; then
            SOURCE="$(dirname "$COMMON")/../shared/vendor/$VENDORED_NAME"
        fi
    fi
    EXPECTED_SHA256="${EXECSTORE_CITUS_SHA256:-$VENDORED_SHA256}"
fi
[ -e "$SOURCE" ] || die "citus is not installed in $PKGLIBDIR and its source $SOURCE does not exist; install Citus for PostgreSQL ${PG_MAJOR} (e.g. the PGDG postgresql-${PG_MAJOR}-citus package) or point EXECSTORE_CITUS_SOURCE at a Citus release tarball or source tree"

if [ -d "$SOURCE" ]; then
    SRC="$(cd "$SOURCE" && pwd)"
    say "building from the source tree $SRC"
else
    if [ -n "$EXPECTED_SHA256" ]; then
        ACTUAL="$(sha256sum "$SOURCE" | cut -d' ' -f1)"
        [ "$ACTUAL" = "$EXPECTED_SHA256" ] || die "$SOURCE has sha256 $ACTUAL, expected $EXPECTED_SHA256"
        say "source $SOURCE (sha256 verified)"
    else
        say "source $SOURCE (no sha256 given, not verified)"
    fi
    NAME="$(basename "$SOURCE")"
    NAME="${NAME%.tar.gz}"
    NAME="${NAME%.tgz}"
    BUILD_DIR="${EXECSTORE_CITUS_BUILD_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/execstore/$NAME}"
    SRC="$BUILD_DIR/src"
    # A stamp marks a complete unpack: an interrupted one is thrown away and redone.
    if [ ! -f "$BUILD_DIR/.unpacked" ]; then
        say "unpacking into $SRC"
        rm -rf "$SRC"
        mkdir -p "$SRC"
        tar xzf "$SOURCE" -C "$SRC" --strip-components=1
        touch "$BUILD_DIR/.unpacked"
    else
        say "reusing the unpacked source in $SRC"
    fi
fi
[ -f "$SRC/configure" ] || die "$SRC does not look like a Citus source tree (no configure)"
LOG_DIR="${BUILD_DIR:-$SRC}"
LOG="$LOG_DIR/ensure-citus.log"

# --- build dependencies -------------------------------------------------------------------
MISSING=""
for pkg in $BUILD_DEPS; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        MISSING="$MISSING $pkg"
    fi
done
if [ -n "$MISSING" ]; then
    command -v apt-get >/dev/null 2>&1 || die "missing build dependencies:$MISSING (and no apt-get to install them)"
    say "installing build dependencies:$MISSING"
    for pkg in $MISSING; do
        # `apt-get update` only when apt does not know a package yet.
        if ! apt-cache show "$pkg" >/dev/null 2>&1; then
            $SUDO apt-get update -qq
            break
        fi
    done
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $MISSING >/dev/null
else
    say "build dependencies present"
fi

# --- the one compile fix --------------------------------------------------------------------
# Citus 13.2.2's pg_version_compat.h defines a static have_createdb_privilege() for PG < 16;
# PostgreSQL 15.20 (and later 15.x) exports that function, and the static copy then fails to
# compile ("static declaration follows non-static declaration"). Renaming the copy lets the
# one call site use PostgreSQL's own. Idempotent: the renamed line no longer matches.
COMPAT="$SRC/src/include/pg_version_compat.h"
if grep -q '^have_createdb_privilege(void)$' "$COMPAT"; then
    say "patching $COMPAT (have_createdb_privilege, PostgreSQL 15.20 exports it)"
    sed -i 's/^have_createdb_privilege(void)$/citus_compat_have_createdb_privilege_unused(void)/' "$COMPAT"
else
    say "pg_version_compat.h needs no patch (already applied or not present)"
fi

# --- configure, build, install --------------------------------------------------------------
cd "$SRC"
: >"$LOG"
run_logged() {
    if ! "$@" >>"$LOG" 2>&1; then
        tail -n 30 "$LOG" >&2
        die "'$*' failed in $SRC; full log: $LOG"
    fi
}
if [ ! -f "$SRC/config.status" ] || [ ! -f "$SRC/.configured" ]; then
    say "configure --without-libcurl (log: $LOG)"
    run_logged ./configure --without-libcurl PG_CONFIG="$PG_CONFIG"
    touch "$SRC/.configured"
else
    say "already configured"
fi
START=$(date +%s)
say "make -j2 at nice 19 (minutes on a busy machine; log: $LOG)"
run_logged nice -n 19 make -j2
say "built in $(($(date +%s) - START)) s"
say "make install"
run_logged $SUDO make install
[ -f "$PKGLIBDIR/citus.so" ] && [ -f "$EXTDIR/citus.control" ] || die "make install finished but $PKGLIBDIR/citus.so or $EXTDIR/citus.control is missing"
say "citus installed ($PKGLIBDIR/citus.so)"
