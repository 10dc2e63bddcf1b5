#!/usr/bin/env bash
# Goodput under overload: what a replica serves, and what refusing costs it, when far more
# misses arrive than it can transform.
#
#   benches/overload.sh                       # release build, the embedded default, 2 MP photo
#   IMGEDGE_BIN=/tmp/imgedge benches/overload.sh   # that binary, no cargo build
#   DUR=20 FLOOD=512 benches/overload.sh
#
# One owner, one 2 MP photo, 600,000 distinct signed variants (w_100…1499 × h_60…489, fmt_webp),
# shuffled, so that every request is a miss and every run sees the same mix of sizes; wrk on the
# same cores. Three runs, each on its own third of the variants:
#   capacity  8 connections;
#   eager     FLOOD connections that send their next request at once after a 503;
#   patient   FLOOD connections that wait Retry-After (1 s) after a 503, as browsers and CDNs do.
# Prints per run: answers/s, goodput (transformed variants served, from /metrics) and goodput ×
# capacity, server CPU per refusal (the run's CPU less its transforms at the capacity run's CPU
# each, over the refusals), log lines per refusal (every line but the two of each transform),
# peak RSS, the p99 of the 200s (the server's time from their access lines, queue wait
# included) and wrk's p99 over all answers. The server logs as shipped (access log on, human
# format, to a file). wrk's delay() is per thread, not per connection: after a 503 the thread's
# next request waits 1 s, which is about what its connection would do.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$HERE/.." && pwd)"
DUR="${DUR:-20}"; FLOOD="${FLOOD:-512}"; CAP="${CAP:-8}"; PORT="${PORT:-3930}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/imgedge-target}"
BIN="${IMGEDGE_BIN:-$CARGO_TARGET_DIR/release/imgedge}"
WORK="/tmp/imgbench/overload-$(date +%Y%m%d-%H%M%S)"; mkdir -p "$WORK"
CORPUS=/tmp/imgbench/corpus; PIDS=()
# shellcheck source=bench-lib.sh
. "$HERE/bench-lib.sh"

command -v wrk >/dev/null || apt-get install -y -q wrk
[ -f "$CORPUS/photo-2mp.jpg" ] || "$HERE/peers/make-corpus.sh"
[ -n "${IMGEDGE_BIN:-}" ] || (cd "$ROOT" && cargo build --release --bin imgedge ${FEATURES:+--features "$FEATURES"})
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
trap cleanup EXIT

env PORT="$PORT" HOST=127.0.0.1 DATA_DIR="$WORK/data" QUOTA_DAILY_LIMIT=100000000 "$BIN" > "$WORK/server.log" 2>&1 &
SERVER=$!; PIDS+=("$SERVER")
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" -o /dev/null && break; sleep 0.1; done
TOKEN=$(setup_owner "$PORT")
ID=$(upload "$PORT" "$TOKEN" "$CORPUS/photo-2mp.jpg")
KEY=$(curl -s "http://127.0.0.1:$PORT/v1/me/signing-key" -H "Authorization: Bearer $TOKEN" | json '["key"]')
# Three disjoint sets of signed variants, one per run.
python3 - "$KEY" "$ID" "$WORK" <<'PY'
import base64, hashlib, hmac, sys
key, image, work = bytes.fromhex(sys.argv[1]), sys.argv[2], sys.argv[3]
def sign(path):
    mac = hmac.new(key, path.encode(), hashlib.sha256).digest()
    return f"{path}?sig={base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
import random
urls = [sign(f"/i/{image}/w_{w},h_{h},fmt_webp") for w in range(100, 1500) for h in range(60, 490)]
random.Random(1).shuffle(urls)
for n, name in enumerate(["capacity", "eager", "patient"]):
    with open(f"{work}/urls-{name}.txt", "w") as f:
        f.write("\n".join(urls[n::3]) + "\n")
PY
cat > "$WORK/flood.lua" <<'LUA'
-- Each thread walks its own part of the URL list; with HONOUR=1 a 503 makes the next request
-- of this thread wait Retry-After (1 s), as a browser or a CDN would.
counter = 0
function setup(thread) thread:set("tid", counter); counter = counter + 1 end
function init(args)
  urls = {}
  for line in io.lines(os.getenv("URLS")) do urls[#urls + 1] = line end
  i = tid * math.floor(#urls / tonumber(os.getenv("THREADS")))
  honour = os.getenv("HONOUR") == "1"; wait = 0
end
function request() i = i % #urls + 1; return wrk.format("GET", urls[i]) end
function delay() local d = wait; wait = 0; return d end
function response(status, headers, body) if honour and status == 503 then wait = 1000 end end
LUA

ticks() { sed 's/.*) //' "/proc/$SERVER/stat" | awk '{print $12 + $13}'; }
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
misses() { metric 'imgedge_transforms_total{outcome="ok"}'; }
HZ=$(getconf CLK_TCK)
CPU_PER_OK=""
run() { # name connections honour
  local t0 l0 r0 m0 t1 l1 r1 m1 out="$WORK/wrk-$1.txt"
  echo 5 > "/proc/$SERVER/clear_refs" 2>/dev/null || true
  t0=$(ticks); l0=$(wc -l < "$WORK/server.log"); r0=$(metric imgedge_overloaded_total); m0=$(misses)
  URLS="$WORK/urls-$1.txt" THREADS=2 HONOUR="$3" \
    wrk -t2 -c"$2" -d"${DUR}s" --timeout 30s --latency -s "$WORK/flood.lua" "http://127.0.0.1:$PORT" > "$out"
  sleep 1   # the transforms wrk left behind end, and their lines are written
  t1=$(ticks); l1=$(wc -l < "$WORK/server.log"); r1=$(metric imgedge_overloaded_total); m1=$(misses)
  # Lines that are not one of a transform's two (its "transformed" line and its 200 access line).
  tail -n +"$(( l0 + 1 ))" "$WORK/server.log" | head -n "$(( l1 - l0 ))" > "$WORK/log-$1.txt"
  local other; other=$(grep -cv 'transformed\|status=200' "$WORK/log-$1.txt" || true)
  # The 200s' own latency, from their access lines (the server's time, queue wait included).
  local p99ok; p99ok=$(grep -o 'status=200 micros=[0-9]*' "$WORK/log-$1.txt" | sed 's/.*=//' | sort -n \
    | awk '{ v[NR] = $1 } END { if (NR) { i = int(NR * 0.99 + 0.5); if (i < 1) i = 1; printf "%.0f ms", v[i] / 1000 } else print "-" }')
  python3 - "$1" "$out" "$DUR" "$(( t1 - t0 ))" "$HZ" "$other" "$(( r1 - r0 ))" "$(hwm "$SERVER")" "$(( m1 - m0 ))" "$p99ok" "${CPU_PER_OK:-}" <<'PY' | tee -a "$WORK/summary.txt"
import re, sys
name, out, dur, ticks, hz, lines, refused, rss, made, p99ok, per_ok = sys.argv[1:]
text = open(out).read()
total = int(re.search(r"(\d+) requests in", text).group(1))
non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", text)) else 0
p99 = re.search(r"\s99%\s+(\S+)", text).group(1)
ok, dur, cpu, refused = int(made), float(dur), int(ticks) / int(hz), int(refused)
line = f"{name:9} {total / dur:9.1f} answers/s  goodput {ok / dur:6.1f}/s"
if per_ok:
    line += f" = {ok / dur / float(per_ok.split()[1]):4.2f}× capacity"
    spent = cpu - ok * float(per_ok.split()[0])
    if refused:
        line += f"  CPU per refusal {1000 * spent / refused:6.3f} ms  log lines per refusal {int(lines) / refused:5.3f}"
else:
    print(f"{cpu / max(ok, 1):.6f} {ok / dur:.3f}", file=open(out + ".capacity", "w"))
line += f"  200s {total - non2xx}  refused {refused}  server CPU {cpu:5.1f} s  peak RSS {rss} MB  p99 of the 200s {p99ok} (all answers, wrk: {p99})"
print(line)
PY
  [ -n "$CPU_PER_OK" ] || CPU_PER_OK=$(cat "$out.capacity")
}
echo "$(date -Is) $(nproc) cpus; DUR=$DUR FLOOD=$FLOOD CAP=$CAP; $BIN"
run capacity "$CAP" 0
run eager "$FLOOD" 0
run patient "$FLOOD" 1
echo "results: $WORK"
