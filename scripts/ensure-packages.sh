#!/usr/bin/env bash
# Make sure the real components the demo and the tests run are on PATH:
#   prometheus + promtool               (Debian package: prometheus)
#   prometheus-alertmanager + amtool    (Debian package: prometheus-alertmanager)
#   redis-server                        (Debian package: redis-server)
# As root on Debian it installs the missing packages (apt-get update first); otherwise it says
# how and carries on, so `make demo` still runs the parts that need nothing more.
set -euo pipefail
missing=()
need() { # need PACKAGE BINARY...
    local package=$1; shift
    for binary in "$@"; do
        if ! command -v "$binary" >/dev/null 2>&1; then missing+=("$package"); return; fi
    done
}
need prometheus prometheus promtool
need prometheus-alertmanager prometheus-alertmanager amtool
need redis-server redis-server
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "obskit: installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    exit 0
fi
echo "obskit: missing ${missing[*]} and cannot install them (not root or not Debian)." >&2
echo "        Install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
echo "        (make test: the tests that need them FAIL; OBSKIT_TESTS_ALLOW_MISSING=all skips them)" >&2
exit 0
