#!/usr/bin/env bash
# Refresh the web pages' vendored JavaScript/CSS from the npm registry (pinned versions).
# Nothing is loaded from a CDN at run time: the gateway serves these files itself, and
# services/gateway/web/static/vendor/VENDOR.txt records each file's version and SHA-256.
set -euo pipefail
cd "$(dirname "$0")/.."
HTMX=2.0.11
LIVEKIT=2.23.0
SWAGGER=5.35.0
AXE=4.14.1  # tests only (accessibility checks): tests/support/vendor/
dest=services/gateway/web/static/vendor
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null && npm install --no-audit --no-fund --ignore-scripts \
  "htmx.org@$HTMX" "livekit-client@$LIVEKIT" "swagger-ui-dist@$SWAGGER" "axe-core@$AXE" >/dev/null)
m="$work/node_modules"
cp "$m/htmx.org/dist/htmx.min.js" "$dest/htmx.min.js"
cp "$m/livekit-client/dist/livekit-client.umd.js" "$dest/livekit-client.umd.js"
cp "$m/swagger-ui-dist/swagger-ui-bundle.js" "$dest/swagger-ui-bundle.js"
cp "$m/swagger-ui-dist/swagger-ui.css" "$dest/swagger-ui.css"
cp "$m/axe-core/axe.min.js" tests/support/vendor/axe.min.js
{
  echo "# file (in this folder, or a repository path)  package@version  sha256"
  echo "htmx.min.js  htmx.org@$HTMX  $(sha256sum "$dest/htmx.min.js" | cut -d' ' -f1)"
  echo "livekit-client.umd.js  livekit-client@$LIVEKIT  $(sha256sum "$dest/livekit-client.umd.js" | cut -d' ' -f1)"
  echo "swagger-ui-bundle.js  swagger-ui-dist@$SWAGGER  $(sha256sum "$dest/swagger-ui-bundle.js" | cut -d' ' -f1)"
  echo "swagger-ui.css  swagger-ui-dist@$SWAGGER  $(sha256sum "$dest/swagger-ui.css" | cut -d' ' -f1)"
  echo "tests/support/vendor/axe.min.js  axe-core@$AXE  $(sha256sum tests/support/vendor/axe.min.js | cut -d' ' -f1)"
} > "$dest/VENDOR.txt"
echo "vendored into $dest"
