#!/usr/bin/env bash
# Make headless Chromium available for the browser tests (pytest -m browser).
# Idempotent: installs the Debian chromium package only when /usr/bin/chromium is missing.
# Playwright itself (the Python package) comes from the test extra: pip install -e '.[test]'.
# Playwright's own browser download (`playwright install`) cannot reach its CDN here; the tests
# launch /usr/bin/chromium through executable_path instead.
set -euo pipefail

CHROMIUM="${PACKRAT_CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
    echo "setup-browser: $CHROMIUM already installed ($("$CHROMIUM" --version 2>/dev/null || echo unknown version))"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "setup-browser: need root (or sudo) to apt-get install chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium
echo "setup-browser: installed $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
