#!/usr/bin/env bash
# Soak: a mixed load (uploads, misses, hits, 304s, deletes, logins) against the release build on
# the embedded default for SECS seconds, reporting RSS, descriptors, caches and answers every
# INTERVAL seconds, then checking memory stays inside its bound and flat, and nothing leaks.
#
#   benches/soak.sh                  # SECS=600 INTERVAL=30 THREADS=8 CACHE_MEMORY_MB=256
#   PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 benches/soak.sh   # another allocator
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/soak benches/soak.sh  # an existing database
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$HERE/.." && pwd)"
SECS="${SECS:-600}"; INTERVAL="${INTERVAL:-30}"; THREADS="${THREADS:-8}"; CACHE="${CACHE_MEMORY_MB:-256}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/imgedge-target}"
"$HERE/peers/make-corpus.sh" >/dev/null
(cd "$ROOT" && cargo build --release --bin imgedge ${FEATURES:+--features "$FEATURES"})
WORK="$(mktemp -d /tmp/imgedge-soak.XXXXXX)"; PORT="${PORT:-3950}"
env PORT="$PORT" HOST=127.0.0.1 DATA_DIR="$WORK/data" CACHE_MEMORY_MB="$CACHE" QUOTA_DAILY_LIMIT=100000000 \
    LOGIN_FAILURES_PER_IP=0 LOGIN_FAILURES_PER_USER=0 ACCESS_LOG=false \
    ${DATABASE_URL:+JWT_SECRET=${JWT_SECRET:-soak-secret-soak-secret-soak-secret-0123}} ${PRELOAD:+LD_PRELOAD=$PRELOAD} LOG_LEVEL=warn "$CARGO_TARGET_DIR/release/imgedge" > "$WORK/imgedge.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null && break; sleep 0.1; done
echo "imgedge pid $PID on :$PORT, data in $WORK; $SECS s, $THREADS threads, CACHE_MEMORY_MB=$CACHE"
python3 "$HERE/soak.py" "http://127.0.0.1:$PORT" "$PID" /tmp/imgbench/corpus \
  --seconds "$SECS" --interval "$INTERVAL" --threads "$THREADS" --cache-mb "$CACHE"
