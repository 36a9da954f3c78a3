#!/bin/sh
# pg_partman for the partman-mode log tests: Debian's package, installed once (idempotent).
# Runs `apt-get update` only when the package is not known to apt yet.
set -eu
PG_MAJOR="${PG_MAJOR:-15}"
if [ -f "/usr/share/postgresql/${PG_MAJOR}/extension/pg_partman.control" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "pg_partman is not installed and apt-get is not available: install pg_partman 4.x for PostgreSQL ${PG_MAJOR}" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
if ! apt-cache show "postgresql-${PG_MAJOR}-partman" >/dev/null 2>&1; then
    $SUDO apt-get update -qq
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "postgresql-${PG_MAJOR}-partman" >/dev/null
