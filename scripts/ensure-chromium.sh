#!/usr/bin/env bash
# Make sure Debian's `chromium` is installed: the web page tests drive it with Playwright
# (Playwright's own browser download cannot work here).  Installs it with apt when missing.
set -uo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "ensure-chromium: installing chromium with apt" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
command -v chromium >/dev/null 2>&1 || echo "ensure-chromium: no chromium; the browser tests skip" >&2
exit 0
