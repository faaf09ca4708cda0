#!/usr/bin/env bash
# Install Debian's chromium for the web UI tests (Playwright drives /usr/bin/chromium; no browser download).
set -uo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || exit 1
[ -x /usr/bin/chromium ] && echo "chromium ready at /usr/bin/chromium"
