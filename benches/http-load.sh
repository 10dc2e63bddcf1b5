#!/usr/bin/env bash
# HTTP load comparison, one run, same machine: imgedge vs the two peers in benches/peers (Express +
# Sharp, and thumbor from PyPI with Pillow's libjpeg-turbo) on the benchmark corpus, and
# imgedge's cache hit vs nginx serving the same bytes. Needs only cargo, node + npm, python3 -m
# venv + pip (thumbor, once), and apt (wrk, nginx-light and the corpus's photos).
#
#   benches/http-load.sh                    # DUR=10 CONC=8 REPS=3 WRK_THREADS=2 SCEN="a b c d e f"
#   IMGEDGE_ENV="MALLOC_MMAP_THRESHOLD_=1048576" benches/http-load.sh   # extra environment for imgedge
#   THUMBOR=0 benches/http-load.sh          # without thumbor (cold cases a-d only have it)
#
# Cache misses: an imgedge with both caches off (CACHE_MEMORY_MB=0, CACHE_STORE_VARIANTS=false)
# and each corpus file uploaded COPIES times; wrk walks the copies so concurrent requests never
# share a transform (single flight would otherwise merge them), so every request decodes,
# resizes and encodes, as Sharp does. Cache hits: a second imgedge with caches on, one URL.
# Reports medians of REPS interleaved runs, ratios, and peak RSS (VmHWM) of each server.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$HERE/.." && pwd)"
PEERS="$HERE/peers"
DUR="${DUR:-10}"; CONC="${CONC:-8}"; REPS="${REPS:-3}"; WT="${WRK_THREADS:-2}"; COPIES="${COPIES:-32}"
SCEN="${SCEN:-a b c d e f}"; THUMBOR="${THUMBOR:-1}"
CORPUS=/tmp/imgbench/corpus; PEER=/tmp/imgbench/peer-sharp
RES="/tmp/imgbench/imgedge-$(date +%Y%m%d-%H%M%S)"; mkdir -p "$RES"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/imgedge-target}"
BIN="$CARGO_TARGET_DIR/release/imgedge"

command -v wrk >/dev/null && command -v nginx >/dev/null || apt-get install -y -q wrk nginx-light
"$PEERS/make-corpus.sh"   # the peer's code and, once, its node_modules and the corpus
(cd "$ROOT" && cargo build --release --bin imgedge ${FEATURES:+--features "$FEATURES"})

PIDS=()
# thumbor forks its workers: they go with their parent.
cleanup() { for p in "${PIDS[@]:-}"; do pkill -P "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
wait_up() { for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$1/healthz" -o /dev/null && return 0; sleep 0.1; done; echo "no server on :$1" >&2; exit 1; }
hwm() { awk '/^VmHWM/{printf "%d", $2/1024}' "/proc/$1/status"; }
json() { python3 -c "import sys,json; print(json.load(sys.stdin)$1)"; }

# --- servers
(cd "$PEER" && exec env PORT=3900 CORPUS="$CORPUS" CLUSTER=0 UV_THREADPOOL_SIZE=4 node server.js) > "$RES/sharp.log" 2>&1 &
SHARP=$!; PIDS+=("$SHARP")
start_imgedge() { # port cache_mb store_variants
  rm -rf "$RES/data-$1"
  env ${IMGEDGE_ENV:-} PORT="$1" HOST=127.0.0.1 DATA_DIR="$RES/data-$1" CACHE_MEMORY_MB="$2" CACHE_STORE_VARIANTS="$3" \
      QUOTA_DAILY_LIMIT=100000000 ACCESS_LOG=false LOG_LEVEL=warn "$BIN" > "$RES/imgedge-$1.log" 2>&1 &
  echo "$!"
}
MISS=$(start_imgedge 3910 0 false); HIT=$(start_imgedge 3911 256 true); PIDS+=("$MISS" "$HIT")
if [ "$THUMBOR" = 1 ]; then
  if curl -s -o /dev/null http://127.0.0.1:3902/; then echo "port 3902 is taken (an old thumbor?)" >&2; exit 1; fi
  "$PEERS/thumbor/run.sh" 3902 > "$RES/thumbor.log" 2>&1 & THUMB=$!; PIDS+=("$THUMB")
  for _ in $(seq 1 1200); do curl -sf http://127.0.0.1:3902/healthcheck -o /dev/null && break; sleep 0.1; done
  curl -sf http://127.0.0.1:3902/healthcheck -o /dev/null || { echo "thumbor did not start: $RES/thumbor.log" >&2; exit 1; }
fi
wait_up 3900; wait_up 3910; wait_up 3911

# --- imgedge set-up: an owner, the corpus uploaded, signed URL lists
setup_owner() { # port -> token
  curl -s -XPOST "http://127.0.0.1:$1/v1/auth/register" -d '{"username":"bench","password":"bench-password"}' | json '["token"]'
}
upload() { # port token file -> id
  curl -s -XPOST "http://127.0.0.1:$1/v1/images" -H "Authorization: Bearer $2" --data-binary "@$3" | json '["id"]'
}
sign() { # port token id ops -> url path
  curl -s -XPOST "http://127.0.0.1:$1/v1/images/$3/url" -H "Authorization: Bearer $2" -d "{\"ops\":\"$4\"}" | json '["url"]'
}
declare -A FILE=([a]=photo-12mp.jpg [b]=photo-12mp.jpg [c]=photo-2mp.jpg [d]=alpha-1024.png)
declare -A OPS=([a]="w_300,q_80,fmt_webp" [b]="w_1200,q_80,fmt_jpeg" [c]="w_300,q_80,fmt_webp" [d]="w_300,fmt_png")
declare -A SHARP_URL=(
  [a]="/t/photo-12mp.jpg?w=300&fmt=webp&q=80" [b]="/t/photo-12mp.jpg?w=1200&fmt=jpeg&q=80"
  [c]="/t/photo-2mp.jpg?w=300&fmt=webp&q=80" [d]="/t/alpha-1024.png?w=300&fmt=png"
  [e]="/raw/photo-2mp.jpg" [f]="/raw/cached-a.webp")
declare -A THUMBOR_URL=(
  [a]="/unsafe/300x0/filters:format(webp):quality(80)/photo-12mp.jpg"
  [b]="/unsafe/1200x0/filters:format(jpeg):quality(80)/photo-12mp.jpg"
  [c]="/unsafe/300x0/filters:format(webp):quality(80)/photo-2mp.jpg"
  [d]="/unsafe/300x0/filters:format(png)/alpha-1024.png")
TOKEN=$(setup_owner 3910)
echo "uploading $COPIES copies of each corpus file to the cache-less imgedge…"
declare -A IDS
for f in photo-12mp.jpg photo-2mp.jpg alpha-1024.png; do
  IDS[$f]=""
  for _ in $(seq 1 "$COPIES"); do IDS[$f]+="$(upload 3910 "$TOKEN" "$CORPUS/$f") "; done
done
for s in a b c d; do
  : > "$RES/urls-$s.txt"
  for id in ${IDS[${FILE[$s]}]}; do sign 3910 "$TOKEN" "$id" "${OPS[$s]}" >> "$RES/urls-$s.txt"; done
done
ORIG_ID=$(echo ${IDS[photo-2mp.jpg]} | cut -d' ' -f1)
curl -s "http://127.0.0.1:3910/v1/images/$ORIG_ID" -H "Authorization: Bearer $TOKEN" | json '["url"]' > "$RES/urls-e.txt"
HTOKEN=$(setup_owner 3911); HID=$(upload 3911 "$HTOKEN" "$CORPUS/photo-12mp.jpg")
sign 3911 "$HTOKEN" "$HID" "w_300,q_80,fmt_webp" > "$RES/urls-f.txt"
curl -s -o "$RES/cached-a.webp" "http://127.0.0.1:3911$(cat "$RES/urls-f.txt")"
cp "$RES/cached-a.webp" "$CORPUS/cached-a.webp"

# --- nginx serving imgedge's (f) bytes as a static file
NG="$RES/nginx"; mkdir -p "$NG/logs" "$NG/tmp" "$NG/static"; cp "$RES/cached-a.webp" "$NG/static/a.webp"
cat > "$NG/nginx.conf" <<NGX
worker_processes 2;
pid $NG/nginx.pid;
error_log $NG/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
  types { image/webp webp; }
  client_body_temp_path $NG/tmp; proxy_temp_path $NG/tmp; fastcgi_temp_path $NG/tmp; uwsgi_temp_path $NG/tmp; scgi_temp_path $NG/tmp;
  server { listen 127.0.0.1:3901; root $NG/static; }
}
NGX
nginx -p "$NG" -c "$NG/nginx.conf" -g 'daemon off;' & PIDS+=("$!"); sleep 0.5

cat > "$RES/walk.lua" <<'LUA'
-- Each wrk thread walks the URL list from its own offset.
counter = 0
function setup(thread) thread:set("tid", counter); counter = counter + 1 end
function init(args)
  urls = {}
  for line in io.lines(os.getenv("URLS")) do urls[#urls + 1] = line end
  i = tid * math.floor(#urls / 2)
end
function request() i = i % #urls + 1; return wrk.format("GET", urls[i]) end
LUA

run() { # label port scenario rep  (imgedge when the port is 391x)
  local out="$RES/$1.$3.rep$4.txt"
  if [ "$2" = 3910 ] || [ "$2" = 3911 ]; then
    URLS="$RES/urls-$3.txt" wrk -t"$WT" -c"$CONC" -d"${DUR}s" --latency -s "$RES/walk.lua" "http://127.0.0.1:$2" > "$out"
  elif [ "$2" = 3901 ]; then
    wrk -t"$WT" -c"$CONC" -d"${DUR}s" --latency "http://127.0.0.1:3901/a.webp" > "$out"
  elif [ "$2" = 3902 ]; then
    wrk -t"$WT" -c"$CONC" -d"${DUR}s" --latency "http://127.0.0.1:3902${THUMBOR_URL[$3]}" > "$out"
  else
    wrk -t"$WT" -c"$CONC" -d"${DUR}s" --latency "http://127.0.0.1:$2${SHARP_URL[$3]}" > "$out"
  fi
  local rps non2xx; rps=$(awk '/^Requests\/sec/{print $2}' "$out"); non2xx=$(awk '/Non-2xx/{print $NF}' "$out")
  printf '%s\t%s\t%s\t%s\n' "$1" "$3" "$rps" "${non2xx:-0}" >> "$RES/raw.tsv"
  echo "  $1 $3 rep$4: $rps req/s ${non2xx:+non-2xx=$non2xx}"
}
port_of() { case $1 in sharp) echo 3900;; thumbor) echo 3902;; imgedge) [ "$2" = f ] && echo 3911 || echo 3910;; nginx) echo 3901;; esac; }
# Who serves scenario $1: thumbor only the cold transforms.
servers() { if [ "$THUMBOR" = 1 ] && [ -n "${THUMBOR_URL[$1]:-}" ]; then echo sharp thumbor imgedge; else echo sharp imgedge; fi; }

echo "warm-up"
for s in $SCEN; do
  for who in $(servers $s); do
    p=$(port_of $who $s)
    if [ "$p" = 3900 ]; then wrk -t1 -c2 -d2s "http://127.0.0.1:3900${SHARP_URL[$s]}" >/dev/null
    elif [ "$p" = 3902 ]; then wrk -t1 -c2 -d2s "http://127.0.0.1:3902${THUMBOR_URL[$s]}" >/dev/null
    else URLS="$RES/urls-$s.txt" wrk -t1 -c2 -d2s -s "$RES/walk.lua" "http://127.0.0.1:$p" >/dev/null; fi
  done
done
for rep in $(seq 1 "$REPS"); do
  for s in $SCEN; do
    for who in $(servers $s); do run $who "$(port_of $who $s)" $s "$rep"; done
  done
  case " $SCEN " in *" f "*) run nginx 3901 f "$rep";; esac
done

med() { sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
rps() { awk -v w="$1" -v s="$2" '$1==w && $2==s {print $3}' "$RES/raw.tsv" | med; }
{
  echo "$(date -Is) $(nproc) cpus; DUR=$DUR CONC=$CONC REPS=$REPS WRK_THREADS=$WT COPIES=$COPIES; medians"
  printf '%-34s %10s %10s %10s %7s %9s\n' scenario "sharp" "thumbor" "imgedge" "×sharp" "×faster"
  for s in $SCEN; do
    case $s in a) d="(a) 12MP jpeg -> w300 webp (miss)";; b) d="(b) 12MP jpeg -> w1200 jpeg (miss)";;
      c) d="(c) 2MP jpeg -> w300 webp (miss)";; d) d="(d) png+alpha -> w300 png (miss)";;
      e) d="(e) original 2MP jpeg";; f) d="(f) cached (a) output (hit)";; esac
    x=$(rps sharp $s); t=$(rps thumbor $s); y=$(rps imgedge $s); [ "${t:-0}" = 0 ] && t=""
    faster=$(awk -v a="$x" -v b="${t:-0}" 'BEGIN{print (b > a) ? b : a}')
    printf '%-34s %10.1f %10s %10.1f %7.2f %9.2f\n' "$d" "$x" "${t:--}" "$y" \
      "$(awk -v a="$y" -v b="$x" 'BEGIN{print a/b}')" "$(awk -v a="$y" -v b="$faster" 'BEGIN{print a/b}')"
  done
  case " $SCEN " in *" f "*) n=$(rps nginx f); y=$(rps imgedge f)
  printf '%-34s %10.1f %10s %10.1f %7.2f   (imgedge hit / nginx static)\n' "nginx static, same bytes" "$n" - "$y" "$(awk -v a="$y" -v b="$n" 'BEGIN{print a/b}')";; esac
  thumbor_hwm=""
  if [ "$THUMBOR" = 1 ]; then # the thumbor process and its workers
    thumbor_hwm=", thumbor $(for p in $THUMB $(pgrep -P "$THUMB"); do hwm "$p"; echo; done | awk '{s+=$1} END{print s}') MB"
  fi
  echo "peak RSS (VmHWM): sharp $(hwm $SHARP) MB$thumbor_hwm, imgedge cache-less $(hwm $MISS) MB, imgedge caching $(hwm $HIT) MB"
  grep -h Non-2xx "$RES"/*.txt | sort | uniq -c || true
} | tee "$RES/table.txt"
echo "results: $RES"
