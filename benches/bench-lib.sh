# Helpers shared by benches/http-load.sh and benches/avif-calibrate.sh; sourced, not run.
# Expects RES (results folder), BIN (imgedge binary), PEERS, PEER (the Sharp peer's copy) and
# CORPUS to be set. Servers it starts are recorded in PIDS; `trap cleanup EXIT` ends them.

PIDS=()
# thumbor forks its workers: they go with their parent, the parent first (it would replace them).
# Behind nginx (benches/peers/thumbor/run.sh) the parent is that script: it ends its children
# (the thumbor processes and nginx, whose master ends its workers) when it is ended.
cleanup() {
  local p kids all=""
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    kids=$(pgrep -P "$p" || true); kill "$p" 2>/dev/null || true
    [ -z "$kids" ] || kill $kids 2>/dev/null || true
    all+=" $p $kids"
  done
  # then up to 10 s for them to finish (thumbor's workers take a second or two), and no longer
  for _ in $(seq 1 100); do
    for p in $all; do [ -d "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && break; p=""; done
    [ -z "$p" ] && return 0; sleep 0.1
  done
  kill -9 $all 2>/dev/null || true
}
wait_up() { for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$1/healthz" -o /dev/null && return 0; sleep 0.1; done; echo "no server on :$1" >&2; exit 1; }
proc_tree() { # pids -> them and all their descendants
  local p
  for p in "$@"; do echo "$p"; proc_tree $(pgrep -P "$p" || true); done
}
hwm() { awk '/^VmHWM/{printf "%d", $2/1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
json() { python3 -c "import sys,json; print(json.load(sys.stdin)$1)"; }

start_sharp() { # port; sets SHARP
  (cd "$PEER" && exec env PORT="$1" CORPUS="$CORPUS" CLUSTER=0 UV_THREADPOOL_SIZE=4 node server.js) > "$RES/sharp.log" 2>&1 &
  SHARP=$!; PIDS+=("$SHARP")
}
start_imgedge() { # port cache_mb store_variants -> pid
  rm -rf "$RES/data-$1"
  env ${IMGEDGE_ENV:-} PORT="$1" HOST=127.0.0.1 DATA_DIR="$RES/data-$1" CACHE_MEMORY_MB="$2" CACHE_STORE_VARIANTS="$3" \
      QUOTA_DAILY_LIMIT=100000000 ACCESS_LOG=false LOG_LEVEL=warn "$BIN" > "$RES/imgedge-$1.log" 2>&1 &
  echo "$!"
}
# thumbor as benches/peers/thumbor/run.sh runs it: by default one process per core behind nginx
# on the port (THUMBOR_MODE=processes: one `thumbor --processes N`); THUMB is run.sh's pid.
start_thumbor() { # port; sets THUMB, waits until it answers
  if curl -s -o /dev/null "http://127.0.0.1:$1/"; then echo "port $1 is taken (an old thumbor?)" >&2; exit 1; fi
  "$PEERS/thumbor/run.sh" "$1" > "$RES/thumbor.log" 2>&1 & THUMB=$!; PIDS+=("$THUMB")
  for _ in $(seq 1 1200); do
    curl -sf "http://127.0.0.1:$1/healthcheck" -o /dev/null && break
    kill -0 "$THUMB" 2>/dev/null || break; sleep 0.1
  done
  curl -sf "http://127.0.0.1:$1/healthcheck" -o /dev/null || { echo "thumbor did not start: $RES/thumbor.log" >&2; exit 1; }
}

# imgedge set-up: an owner, uploads, signed URLs
setup_owner() { # port -> token
  curl -s -XPOST "http://127.0.0.1:$1/v1/auth/register" -d '{"username":"bench","password":"bench-password"}' | json '["token"]'
}
upload() { # port token file -> id
  curl -s -XPOST "http://127.0.0.1:$1/v1/images" -H "Authorization: Bearer $2" --data-binary "@$3" | json '["id"]'
}
try_upload() { # port token file -> the new image's id; or, when refused, the HTTP status and status 1
  local out code
  out=$(curl -s -w '\n%{http_code}' -XPOST "http://127.0.0.1:$1/v1/images" -H "Authorization: Bearer $2" --data-binary "@$3")
  code=${out##*$'\n'}
  case $code in
    2??) printf '%s' "${out%$'\n'*}" | json '["id"]' ;;
    *) echo "$code"; return 1 ;;
  esac
}
sign() { # port token id ops -> url path
  curl -s -XPOST "http://127.0.0.1:$1/v1/images/$3/url" -H "Authorization: Bearer $2" -d "{\"ops\":\"$4\"}" | json '["url"]'
}

# A python with Pillow (AVIF decoding) and numpy for benches/quality.py: a venv made on first use.
quality_python() { # -> path, or non-zero when it cannot be had
  local v="${QUALITY_VENV:-$HOME/.cache/imgedge-quality-venv}"
  local check='import numpy, pillow_jxl; from PIL import features, Image
try: import pillow_avif
except ImportError: pass
assert features.check("avif") or "AVIF" in Image.OPEN'
  if ! "$v/bin/python" -c "$check" 2>/dev/null; then
    { python3 -m venv "$v" && "$v/bin/pip" install -q "pillow>=11.3" numpy pillow-jxl-plugin; } >&2 || return 1
    "$v/bin/python" -c "$check" 2>/dev/null || "$v/bin/pip" install -q pillow-avif-plugin >&2 || return 1
    "$v/bin/python" -c "$check" || return 1
  fi
  echo "$v/bin/python"
}
