#!/usr/bin/env bash
# Generated API clients, end to end: a Python client (openapi-python-client) and a TypeScript one
# (openapi-typescript + openapi-fetch) made from docs/openapi.json, each walking through the API
# against the real server.
#
#   tests/clients/run.sh [path/to/imgedge]
#
# Generates both into a temporary directory (never the clone), type-checks them — mypy --strict
# over the Python package and walk.py, tsc --strict over the TypeScript types and walk.ts —
# starts the given server binary (default: the debug build in $CARGO_TARGET_DIR, else
# ~/.cache/imgedge-target) on a free port with a fresh DATA_DIR (SQLite + files), and runs
# walk.py and walk.ts against it: register → log in → upload (multipart and raw) → sign a URL →
# the variant through the generated `/i/{id}/{ops}` operation with `sig` and `exp` as its
# parameters (200, image/webp, a RIFF/WEBP body) → a wrong signature is 403 `bad_signature` →
# delete (204) → 404. The server is stopped on exit.
#
# The tools are pinned here and installed outside the clone on first use, again whenever the pin
# files change: requirements.txt into a venv (openapi-python-client, mypy), package.json +
# package-lock.json with `npm ci` (openapi-typescript, openapi-fetch, typescript; Node.js 20+).
# openapi-python-client.yaml and generate.mjs hold the two generator settings a user needs too.
#
# Environment:
#   CLIENTS_VENV  the Python venv (default ~/.cache/imgedge-clients-venv)
#   CLIENTS_NPM   where the npm packages are installed (default ~/.cache/imgedge-clients-npm)
#   PYTHON        interpreter for the venv (default python3.11, else python3)
#   KEEP=1        keep the temporary directory (generated code, server log); its path is printed
#   TEST_LOG=1    show the server's log
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
schema="$root/docs/openapi.json"
bin="${1:-${CARGO_TARGET_DIR:-$HOME/.cache/imgedge-target}/debug/imgedge}"
venv="${CLIENTS_VENV:-$HOME/.cache/imgedge-clients-venv}"
npm_dir="${CLIENTS_NPM:-$HOME/.cache/imgedge-clients-npm}"

if [ ! -x "$bin" ]; then
  echo "run.sh: no server binary at $bin (cargo build, or pass its path)" >&2
  exit 2
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
command -v node >/dev/null && command -v npm >/dev/null || { echo "run.sh: node and npm are missing (apt-get install nodejs npm)" >&2; exit 2; }

# --- the Python venv, rebuilt when requirements.txt changes
req="$here/requirements.txt"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/openapi-python-client" ] || [ "$(cat "$venv/.imgedge-requirements.sha256" 2>/dev/null || true)" != "$want" ]; then
  python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
  echo "run.sh: installing openapi-python-client and mypy into $venv (with $python)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  echo "$want" >"$venv/.imgedge-requirements.sha256"
fi

# --- the npm packages, reinstalled when package.json or package-lock.json changes
want="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$npm_dir/node_modules/.bin/tsc" ] || [ "$(cat "$npm_dir/.imgedge-pins.sha256" 2>/dev/null || true)" != "$want" ]; then
  echo "run.sh: installing openapi-typescript, openapi-fetch and typescript into $npm_dir"
  rm -rf "$npm_dir"
  mkdir -p "$npm_dir"
  cp "$here/package.json" "$here/package-lock.json" "$npm_dir/"
  npm ci --silent --no-audit --no-fund --prefix "$npm_dir" >/dev/null
  echo "$want" >"$npm_dir/.imgedge-pins.sha256"
fi

# shellcheck source=../lib/server.sh
. "$root/tests/lib/server.sh"
server_workdir clients
start=$SECONDS

# --- generate and type-check the Python client
mkdir -p "$work/python"
cp "$here/walk.py" "$work/python/"
(
  cd "$work/python"
  # --fail-on-warning: a response or body the generator cannot read fails here, not at run time.
  PATH="$venv/bin:$PATH" openapi-python-client generate --path "$schema" --config "$here/openapi-python-client.yaml" \
    --meta none --output-path imgedge_client --fail-on-warning >generate.log 2>&1 ||
    { cat generate.log >&2; echo "run.sh: openapi-python-client failed" >&2; exit 1; }
  "$venv/bin/mypy" --strict --no-error-summary --cache-dir "$work/mypy-cache" imgedge_client walk.py ||
    { echo "run.sh: mypy --strict failed on the generated Python client" >&2; exit 1; }
)
echo "run.sh: Python client: $(find "$work/python/imgedge_client" -name '*.py' | wc -l) files, $(find "$work/python/imgedge_client/models" -name '*.py' ! -name '__init__.py' | wc -l) models; mypy --strict passes"

# --- generate and type-check the TypeScript client
mkdir -p "$work/ts"
ln -s "$npm_dir/node_modules" "$work/ts/node_modules"
cp "$here/walk.ts" "$here/generate.mjs" "$here/tsconfig.json" "$work/ts/"
echo '{"type": "module", "private": true}' >"$work/ts/package.json"
(
  cd "$work/ts"
  node generate.mjs "$schema" schema.ts
  node_modules/.bin/tsc -p tsconfig.json ||
    { echo "run.sh: tsc --strict failed on the generated TypeScript client" >&2; exit 1; }
)
echo "run.sh: TypeScript client: schema.ts $(wc -l <"$work/ts/schema.ts") lines; tsc --strict passes"

# --- a small PNG (64×48 gradient), made with the standard library
"$venv/bin/python" - "$work/walk.png" <<'PYTHON'
import struct, sys, zlib

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

width, height = 64, 48
rows = b"".join(
    b"\x00" + bytes(v for x in range(width) for v in (x * 255 // width, y * 255 // height, (x + y) % 256))
    for y in range(height)
)
head = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + head + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))
PYTHON

# --- the server
start_server "$bin"
echo "run.sh: server $server (pid $server_pid)"

(cd "$work/python" && "$venv/bin/python" walk.py "$server" "$work/walk.png")
(cd "$work/ts" && node out/walk.js "$server" "$work/walk.png")

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "run.sh: the server died during the walk-throughs" >&2
  exit 1
fi
echo "run.sh: both generated clients passed in $((SECONDS - start)) s"
