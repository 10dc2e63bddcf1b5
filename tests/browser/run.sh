#!/usr/bin/env bash
# Browser test of the owners' console (/console): headless Debian Chromium + chromedriver,
# selenium from tests/browser/requirements.txt in a venv outside the clone, and axe-core (the
# version pinned below, from the npm registry) injected into each screen of the walk-through.
#
#   tests/browser/run.sh [path/to/imgedge]
#
# Starts the given server binary (default: the debug build in $CARGO_TARGET_DIR, else
# ~/.cache/imgedge-target) on a free port with a fresh DATA_DIR (SQLite + files), waits for
# /healthz, runs tests/browser/console_test.py against it — at 1280×800 and as a 390×844 phone —
# and stops it on exit. The screenshots go to $BROWSER_OUT/console-desktop.png and
# console-phone.png (default target/browser, relative to the repository root), also when the
# test fails.
#
# Environment:
#   BROWSER_VENV   the venv (default ~/.cache/imgedge-browser-venv), made or updated as needed
#   AXE_DIR        where axe-core is installed (default ~/.cache/imgedge-axe-core)
#   BROWSER_OUT    where the screenshot goes
#   IMGEDGE_PORT   the server's port (default: a free one the server picks)
#   CONSOLE_BASE   base URL the browser opens instead of the server's own port (a dev proxy in
#                  front of it, say); the server is still started and checked as above
#   KEEP=1         keep the temporary directory (server log, data); its path is printed
#   TEST_LOG=1     show the server's log
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${1:-${CARGO_TARGET_DIR:-$HOME/.cache/imgedge-target}/debug/imgedge}"
venv="${BROWSER_VENV:-$HOME/.cache/imgedge-browser-venv}"
out="${BROWSER_OUT:-target/browser}"
case "$out" in /*) ;; *) out="$root/$out" ;; esac

for tool in /usr/bin/chromium /usr/bin/chromedriver; do
  if [ ! -x "$tool" ]; then
    echo "run.sh: $tool is missing (apt-get install chromium chromium-driver)" >&2
    exit 2
  fi
done
if [ ! -x "$bin" ]; then
  echo "run.sh: no server binary at $bin (cargo build, or pass its path)" >&2
  exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

# The venv, rebuilt when requirements.txt changes.
req="$here/requirements.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  echo "$want" >"$stamp"
fi

# axe-core, the accessibility engine browsers' own audits run, at a pinned version.
AXE_VERSION=4.14.1
axe_dir="${AXE_DIR:-$HOME/.cache/imgedge-axe-core}"
axe_js="$axe_dir/node_modules/axe-core/axe.min.js"
if [ "$(cat "$axe_dir/.version" 2>/dev/null || true)" != "$AXE_VERSION" ] || [ ! -s "$axe_js" ]; then
  command -v npm >/dev/null || { echo "run.sh: npm is missing (apt-get install npm)" >&2; exit 2; }
  mkdir -p "$axe_dir"
  npm install --silent --no-audit --no-fund --prefix "$axe_dir" "axe-core@$AXE_VERSION" >/dev/null
  echo "$AXE_VERSION" >"$axe_dir/.version"
fi

# shellcheck source=../lib/server.sh
. "$root/tests/lib/server.sh"
server_workdir browser
mkdir -p "$out"
# A daily quota of 4: the walk-through spends it and sees the console hold thumbnails back.
start_server "$bin" QUOTA_DAILY_LIMIT=4

base="${CONSOLE_BASE:-$server}"
echo "run.sh: server $server (pid $server_pid), browser opens $base/console"
start=$SECONDS
IMGEDGE_BASE_URL="$base" BROWSER_OUT="$out" AXE_JS="$axe_js" "$venv/bin/python" "$here/console_test.py"
echo "run.sh: passed in $((SECONDS - start)) s; screenshots $out/console-desktop.png, $out/console-phone.png"
