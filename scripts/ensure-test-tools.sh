#!/bin/sh
# Make sure the command-line tools the archive tests read blobs with are installed:
# gunzip (package gzip), jq and zstd. Archives promise to be readable with exactly these
# tools, so the tests fail without them instead of skipping. Does nothing when all are
# on PATH; otherwise installs the missing ones with apt-get (refreshing the package
# lists first), as root or through sudo.
set -eu

missing=""
command -v gunzip >/dev/null 2>&1 || missing="$missing gzip"
command -v jq >/dev/null 2>&1 || missing="$missing jq"
command -v zstd >/dev/null 2>&1 || missing="$missing zstd"
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-test-tools: please install:$missing (no apt-get here)" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    echo "ensure-test-tools: installing$missing needs root (or sudo)" >&2
    exit 1
fi
echo "ensure-test-tools: installing$missing" >&2
$as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
