#!/usr/bin/env bash
# Contract test of docs/openapi.json against a live server, with Schemathesis.
#
#   tests/schemathesis/run.sh [path/to/imgedge]
#
# Starts the binary (default: the debug build in $CARGO_TARGET_DIR, else
# ~/.cache/imgedge-target) on a free port over SQLite + files in a temporary directory,
# registers an owner, uploads a PNG and an animated GIF, and runs Schemathesis against the
# document loaded from the file, with the owner's bearer token on every request. Checks: no
# 5xx, and every response's status, Content-Type, headers and body as documented. Exits
# non-zero on any failure; the server is stopped on exit and its log is kept (the path is
# printed).
#
# Environment:
#   SCHEMATHESIS_VENV          the virtualenv to create or reuse
#                              (default ~/.cache/imgedge-schemathesis-venv)
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 25)
#   SCHEMATHESIS_SEED          fix the seed to replay a run (each run prints its seed)
#   SCHEMATHESIS_WORKERS       concurrent workers (default 2)
#   SCHEMATHESIS_CHECKS        the checks to run instead of the default five (e.g. `all`, to explore)
#   PYTHON                     interpreter for the virtualenv (default python3.11, else python3)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
schema="$root/docs/openapi.json"
binary=${1:-${CARGO_TARGET_DIR:-$HOME/.cache/imgedge-target}/debug/imgedge}
venv=${SCHEMATHESIS_VENV:-$HOME/.cache/imgedge-schemathesis-venv}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-25}
workers=${SCHEMATHESIS_WORKERS:-2}
checks=${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance}

[[ -x $binary ]] || { echo "run.sh: no server binary at $binary (cargo build first, or pass its path)" >&2; exit 2; }
[[ -f $schema ]] || { echo "run.sh: no $schema" >&2; exit 2; }
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")

# --- the virtualenv, reused while it was made from this very requirements.txt
requirements="$here/requirements.txt"
stamp="$venv/.imgedge-requirements.sha256"
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -x $venv/bin/st || ! -f $stamp || $(cat "$stamp") != "$wanted" ]]; then
    python=${PYTHON:-$(command -v python3.11 || command -v python3)}
    echo "run.sh: installing Schemathesis into $venv (with $python)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" >"$stamp"
fi
py="$venv/bin/python"

# (That the document is valid OpenAPI 3.1 is tests/openapi/lint.sh's concern, in the same tier.)

# --- the server
work=$(mktemp -d "${TMPDIR:-/tmp}/imgedge-schemathesis.XXXXXX")
log="$work/server.log"
server_pid=""
cleanup() {
    local status=$?
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work/data"
    echo "run.sh: server log (JSON lines): $log"
    echo "run.sh: JUnit report: $work/report"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
mkdir -p "$work/data"
# SQLite + files in the temporary directory whatever the caller's environment says (and no
# ./config.toml: it starts in $work). A large quota so that transforms keep running: 429
# quota_exceeded is documented and would pass too, but would leave the pipeline's answers
# untested after the first 20.
(
    cd "$work"
    exec env -u DATABASE_URL -u AWS_S3_BUCKET -u IMGEDGE_CONFIG -u JWT_SECRET \
        HOST=127.0.0.1 PORT="$port" DATA_DIR="$work/data" QUOTA_DAILY_LIMIT=1000000 \
        LOG_FORMAT=json LOG_LEVEL="${LOG_LEVEL:-info}" "$binary"
) >"$log" 2>&1 &
server_pid=$!
echo "run.sh: server pid $server_pid on $base, log $log"

for i in $(seq 300); do
    curl -fsS -o /dev/null "$base/healthz" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { echo "run.sh: the server exited during start-up:" >&2; tail -n 30 "$log" >&2; exit 1; }
    [[ $i == 300 ]] && { echo "run.sh: /healthz did not answer within 30 s" >&2; exit 1; }
    sleep 0.1
done

# --- an owner, a token, images and a public preset
json() { "$py" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
user="st_$(date +%s)_$$"
credentials=$(printf '{"username":"%s","password":"schemathesis-password"}' "$user")
curl -fsS -o /dev/null -X POST "$base/v1/auth/register" -d "$credentials"
token=$(curl -fsS -X POST "$base/v1/auth/login" -d "$credentials" | json token)
auth=(-H "Authorization: Bearer $token")

# A small RGB gradient PNG, and a 3-frame animated 2x1 GIF, made with the standard library.
"$py" - "$work" <<'PYTHON'
import struct, sys, zlib

def png(path, width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 255 // width, y * 255 // height, (x + y) % 256))
        for y in range(height)
    )
    head = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + head + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))

def gif(path):
    def frame(index):  # 2x1 pixels of one palette entry: LZW codes clear, index, index, end (3 bits each)
        bits = 4 | index << 3 | index << 6 | 5 << 9
        data = bytes([bits & 0xFF, bits >> 8])
        control = b"\x21\xf9\x04\x00\x0a\x00\x00\x00"
        return control + b"\x2c" + struct.pack("<HHHH", 0, 0, 2, 1) + b"\x00\x02" + bytes([len(data)]) + data + b"\x00"
    screen = b"GIF89a" + struct.pack("<HH", 2, 1) + b"\x80\x00\x00" + b"\xff\x00\x00\x00\x00\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    open(path, "wb").write(screen + loop + frame(0) + frame(1) + frame(0) + b"\x3b")

work = sys.argv[1]
png(f"{work}/keep.png", 64, 48)
png(f"{work}/victim.png", 40, 30)
gif(f"{work}/animated.gif")
PYTHON
upload() { curl -fsS -X POST "$base/v1/images" "${auth[@]}" -F "file=@$1;type=$2"; }
original=$(upload "$work/keep.png" image/png)
image_id=$(json id <<<"$original")
gif_id=$(upload "$work/animated.gif" image/gif | json id)
victim_id=$(upload "$work/victim.png" image/png | json id)
curl -fsS -o /dev/null -X PUT "$base/v1/presets/st_card" "${auth[@]}" -d '{"ops":"w_16,h_16,fmt_webp","public":true}'
echo "run.sh: owner $user; images $image_id (PNG), $gif_id (animated GIF), $victim_id (for deleteImage)"

# --- Schemathesis
# Parameters are drawn from real values part of the time (the rest is generated), so that
# the image routes answer 200 and run real transforms, not only 404 and 400: the two images
# and ops, single tokens and a few combinations. (Schemathesis percent-encodes `,` and `:` in a
# path parameter, as generated clients do; the server reads those escapes as the characters.)
# The delete operation gets an image of its own, so the others live through the run.
cat >"$work/schemathesis.toml" <<TOML
[dictionaries.images]
values = ["$image_id", "$gif_id"]

[dictionaries.victims]
values = ["$victim_id"]

[dictionaries.ops]
values = ["w_32", "h_16", "fmt_webp", "fmt_avif", "fmt_gif", "fmt_jpeg", "fmt_png", "fmt_auto", "q_30", "gray",
          "sepia", "blur_1.5", "sharpen_2", "rot_90", "flip_h", "flip_v", "still", "w_auto", "dpr_auto", "dpr_2",
          "bg_ff0000", "fit_contain", "g_smart", "crop_0:0:8:8", "wm_$image_id", "p_st_card", "",
          "w_32,fmt_webp", "w_16,h_16,fit_cover,fmt_avif", "crop_0:0:8:8,rot_90,gray"]

[parameters]
"path.id" = { dictionary = "images", probability = 0.75 }
"path.ops" = { dictionary = "ops", probability = 0.6 }

[[operations]]
include-operation-id = "deleteImage"
parameters = { "path.id" = { dictionary = "victims", probability = 0.3 } }
TOML

seed=()
[[ -n ${SCHEMATHESIS_SEED:-} ]] && seed=(--seed "$SCHEMATHESIS_SEED")

# Checks: the document's own promises about responses. Not run, by design:
# - negative_data_rejection, positive_data_acceptance: validity of a request is more than its
#   JSON Schema here (the ops grammar, a crop inside the image, a signature matching the
#   path, `exp` only with `sig`, an opaque cursor, image bytes judged by content), and JSON
#   Schema counts `47.0` as an integer where the server's strict JSON reader does not.
# - missing_required_header, ignored_auth, use_after_free, ensure_resource_availability,
#   unsupported_method: auth and resource life cycles are covered by the Rust suite
#   (tests/api) against docs/api.md, and the bearer header sent on every request makes
#   ignored_auth meaningless here.
# Hypothesis' deadline is off: Schemathesis 4 always runs Hypothesis with `deadline=None`.
cd "$work"
started=$(date +%s)
set +e
"$venv/bin/st" --config-file "$work/schemathesis.toml" run "$schema" \
    --url "$base" \
    --header "Authorization: Bearer $token" \
    --checks "$checks" \
    --max-examples "$max_examples" \
    --workers "$workers" \
    --max-redirects 0 \
    --request-timeout 60 \
    --generation-database none \
    --report junit --report-dir "$work/report" \
    "${seed[@]}"
status=$?
set -e
echo "run.sh: schemathesis exited $status after $(($(date +%s) - started)) s"
if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "run.sh: the server died during the run" >&2
    status=1
fi
exit "$status"
