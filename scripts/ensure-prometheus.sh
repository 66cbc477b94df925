#!/usr/bin/env bash
# Make sure `prometheus` and `promtool` are on PATH.
# As root on Debian it installs the `prometheus` package; otherwise it says how and carries on,
# so `make demo` still runs (without the Prometheus part) on a machine where we cannot install.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "obskit: installing the Debian 'prometheus' package (prometheus + promtool)..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    exit 0
fi
echo "obskit: prometheus/promtool not found and cannot install them (not root or not Debian)." >&2
echo "        Install them with: sudo apt-get install -y --no-install-recommends prometheus" >&2
exit 0
