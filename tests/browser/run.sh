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

work="$(mktemp -d "${TMPDIR:-/tmp}/imgedge-browser.XXXXXX")"
server_pid=""
cleanup() {
  local status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "${TEST_LOG:-0}" = 1 ] && [ -s "$work/server.log" ]; then
    echo "---- server log ----" >&2
    cat "$work/server.log" >&2 || true
  elif [ "$status" -ne 0 ] && [ -s "$work/server.log" ]; then
    echo "---- server log (last 40 lines) ----" >&2
    tail -n 40 "$work/server.log" >&2 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$work/data" "$out"
log="$work/server.log"

# From an empty folder, so no ./config.toml is picked up; only the variables below apply.
# PORT=0 lets the server pick a free port, read back from its "listening" log line (no race
# with another process taking a port chosen here).
(
  cd "$work"
  unset IMGEDGE_CONFIG DATABASE_URL AWS_S3_BUCKET JWT_SECRET
  # A daily quota of 4: the walk-through spends it and sees the console hold thumbnails back.
  exec env HOST=127.0.0.1 PORT="${IMGEDGE_PORT:-0}" DATA_DIR="$work/data" LOG_LEVEL="${LOG_LEVEL:-info}" \
    QUOTA_DAILY_LIMIT=4 "$bin" serve
) >"$log" 2>&1 &
server_pid=$!

deadline=$((SECONDS + 60))
port=""
while :; do
  port="$(grep -a 'imgedge listening' "$log" 2>/dev/null | grep -ao '127\.0\.0\.1:[0-9]\+' | head -n1 | cut -d: -f2 || true)"
  if [ -n "$port" ] && curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "run.sh: the server exited before answering /healthz" >&2
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "run.sh: the server did not answer /healthz within 60 s" >&2
    exit 1
  fi
  sleep 0.2
done
server="http://127.0.0.1:$port"

base="${CONSOLE_BASE:-$server}"
echo "run.sh: server $server (pid $server_pid), browser opens $base/console"
start=$SECONDS
IMGEDGE_BASE_URL="$base" BROWSER_OUT="$out" AXE_JS="$axe_js" "$venv/bin/python" "$here/console_test.py"
echo "run.sh: passed in $((SECONDS - start)) s; screenshots $out/console-desktop.png, $out/console-phone.png"
