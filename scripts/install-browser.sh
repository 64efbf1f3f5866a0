#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (Playwright drives it by its path, since
# `playwright install` downloads a browser build and that cannot be fetched here). Idempotent.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    echo "chromium present: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: no apt-get on this machine; browser tests will be skipped" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "install-browser: not root and no sudo; browser tests will be skipped" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
# Update the package lists once, only when apt does not know the package yet.
if ! apt-cache show chromium >/dev/null 2>&1; then
    $SUDO apt-get update -q
fi
if ! $SUDO apt-get install -y -q --no-install-recommends chromium fonts-liberation; then
    $SUDO apt-get update -q
    $SUDO apt-get install -y -q --no-install-recommends chromium fonts-liberation
fi
"$CHROMIUM" --version
