#!/usr/bin/env bash
# HTTP load comparison, one run, same machine: imgedge vs the two peers in benches/peers (Express +
# Sharp, and thumbor from PyPI with Pillow's libjpeg-turbo) on the benchmark corpus, imgedge's
# cache hits (memory and local store) vs nginx serving the same bytes, and then the quality of
# each server's output (benches/quality.py: bytes and SSIM against a Pillow Lanczos reference).
# Needs only cargo, node + npm, python3 -m venv + pip (thumbor, and Pillow + numpy for the
# quality pass, once each), and apt (wrk, nginx-light and the corpus's photos).
#
#   benches/http-load.sh                    # DUR=10 CONC=8 REPS=3 WRK_THREADS=2 SCEN="a b c d e f g h"
#   IMGEDGE_BIN=/tmp/imgedge-bin benches/http-load.sh   # that binary, no cargo build
#   IMGEDGE_ENV="MALLOC_MMAP_THRESHOLD_=1048576" benches/http-load.sh   # extra environment for imgedge
#   THUMBOR=0 benches/http-load.sh          # without thumbor (cold cases a-d and h only have it)
#   QUALITY=0 benches/http-load.sh          # without the quality pass
#   DUR_H=40 benches/http-load.sh           # seconds per run of (h) (default: 4 × DUR, at least 30)
#
# Cache misses: an imgedge with both caches off (CACHE_MEMORY_MB=0, CACHE_STORE_VARIANTS=false)
# and each corpus file uploaded COPIES times; wrk walks the copies so concurrent requests never
# share a transform (single flight would otherwise merge them), so every request decodes,
# resizes and encodes, as Sharp does. Memory-cache hits (f): a second imgedge with caches on, one
# URL. Store hits (g): a third with the memory cache off and variants stored, one URL made once.
# AVIF (h) answers take seconds at c=8, so its runs are longer (DUR_H) and wrk's timeout is 60 s
# everywhere (a reply later than the timeout would drop out of the latency histogram). Each run
# starts once every server is idle (they finish the requests wrk left in flight).
# Reports medians of REPS interleaved runs (req/s, p99 latency), ratios, and each server's peak
# RSS (VmHWM, reset before each run: the largest over the case's runs), and which cache tier
# answered imgedge's requests (its /metrics counters before and after each run).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$HERE/.." && pwd)"
PEERS="$HERE/peers"
DUR="${DUR:-10}"; CONC="${CONC:-8}"; REPS="${REPS:-3}"; WT="${WRK_THREADS:-2}"; COPIES="${COPIES:-32}"
DUR_H="${DUR_H:-$(( DUR * 4 > 30 ? DUR * 4 : 30 ))}"; TIMEOUT="${WRK_TIMEOUT:-60s}"
SCEN="${SCEN:-a b c d e f g h}"; THUMBOR="${THUMBOR:-1}"; QUALITY="${QUALITY:-1}"
CORPUS=/tmp/imgbench/corpus; PEER=/tmp/imgbench/peer-sharp
RES="/tmp/imgbench/imgedge-$(date +%Y%m%d-%H%M%S)"; mkdir -p "$RES"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/imgedge-target}"
BIN="${IMGEDGE_BIN:-$CARGO_TARGET_DIR/release/imgedge}"
# shellcheck source=bench-lib.sh
. "$HERE/bench-lib.sh"

command -v wrk >/dev/null && command -v nginx >/dev/null || apt-get install -y -q wrk nginx-light
"$PEERS/make-corpus.sh"   # the peer's code and, once, its node_modules and the corpus
if [ -z "${IMGEDGE_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --bin imgedge ${FEATURES:+--features "$FEATURES"})
fi
[ -x "$BIN" ] || { echo "no imgedge binary at $BIN" >&2; exit 1; }
trap cleanup EXIT

# --- servers
start_sharp 3900
MISS=$(start_imgedge 3910 0 false); HIT=$(start_imgedge 3911 256 true); STORE=$(start_imgedge 3912 0 true)
PIDS+=("$MISS" "$HIT" "$STORE")
THUMB=""; [ "$THUMBOR" = 1 ] && start_thumbor 3902
wait_up 3900; wait_up 3910; wait_up 3911; wait_up 3912

# --- imgedge set-up: an owner, the corpus uploaded, signed URL lists
declare -A FILE=([a]=photo-12mp.jpg [b]=photo-12mp.jpg [c]=photo-2mp.jpg [d]=alpha-1024.png [h]=photo-2mp.jpg)
declare -A OPS=([a]="w_300,q_80,fmt_webp" [b]="w_1200,q_80,fmt_jpeg" [c]="w_300,q_80,fmt_webp" [d]="w_300,fmt_png"
  [h]="w_600,q_60,fmt_avif")
declare -A SHARP_URL=(
  [a]="/t/photo-12mp.jpg?w=300&fmt=webp&q=80" [b]="/t/photo-12mp.jpg?w=1200&fmt=jpeg&q=80"
  [c]="/t/photo-2mp.jpg?w=300&fmt=webp&q=80" [d]="/t/alpha-1024.png?w=300&fmt=png"
  [e]="/raw/photo-2mp.jpg" [f]="/raw/cached-a.webp" [g]="/raw/cached-g.webp"
  [h]="/t/photo-2mp.jpg?w=600&fmt=avif&q=60")
declare -A THUMBOR_URL=(
  [a]="/unsafe/300x0/filters:format(webp):quality(80)/photo-12mp.jpg"
  [b]="/unsafe/1200x0/filters:format(jpeg):quality(80)/photo-12mp.jpg"
  [c]="/unsafe/300x0/filters:format(webp):quality(80)/photo-2mp.jpg"
  [d]="/unsafe/300x0/filters:format(png)/alpha-1024.png"
  [h]="/unsafe/600x0/filters:format(avif):quality(60)/photo-2mp.jpg")
declare -A NGINX_URL=([f]="/a.webp" [g]="/g.webp")
TOKEN=$(setup_owner 3910)
echo "uploading $COPIES copies of each corpus file to the cache-less imgedge…"
declare -A IDS
for f in photo-12mp.jpg photo-2mp.jpg alpha-1024.png; do
  IDS[$f]=""
  for _ in $(seq 1 "$COPIES"); do IDS[$f]+="$(upload 3910 "$TOKEN" "$CORPUS/$f") "; done
done
for s in a b c d h; do
  : > "$RES/urls-$s.txt"
  for id in ${IDS[${FILE[$s]}]}; do sign 3910 "$TOKEN" "$id" "${OPS[$s]}" >> "$RES/urls-$s.txt"; done
done
ORIG_ID=$(echo ${IDS[photo-2mp.jpg]} | cut -d' ' -f1)
curl -s "http://127.0.0.1:3910/v1/images/$ORIG_ID" -H "Authorization: Bearer $TOKEN" | json '["url"]' > "$RES/urls-e.txt"
HTOKEN=$(setup_owner 3911); HID=$(upload 3911 "$HTOKEN" "$CORPUS/photo-12mp.jpg")
sign 3911 "$HTOKEN" "$HID" "w_300,q_80,fmt_webp" > "$RES/urls-f.txt"
curl -s -o "$RES/cached-a.webp" "http://127.0.0.1:3911$(cat "$RES/urls-f.txt")"
cp "$RES/cached-a.webp" "$CORPUS/cached-a.webp"
# (g): the same variant made once on the store-only imgedge; the next requests read the store.
xcache() { curl -s -o "${2:-/dev/null}" -D - "http://127.0.0.1:$1" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache"{print $2}'; }
STOKEN=$(setup_owner 3912); SID=$(upload 3912 "$STOKEN" "$CORPUS/photo-12mp.jpg")
sign 3912 "$STOKEN" "$SID" "w_300,q_80,fmt_webp" > "$RES/urls-g.txt"
G1=$(xcache "3912$(cat "$RES/urls-g.txt")" "$RES/cached-g.webp"); G2=$(xcache "3912$(cat "$RES/urls-g.txt")")
echo "(g) store-only imgedge: X-Cache first request '$G1', second '$G2'" \
  "$(cmp -s "$RES/cached-a.webp" "$RES/cached-g.webp" && echo "(same bytes as (f))" || echo "(bytes differ from (f))")"
[ "$G2" = hit-store ] || echo "WARNING: (g) expected X-Cache: hit-store on the second request, got '$G2'" >&2
cp "$RES/cached-g.webp" "$CORPUS/cached-g.webp"

# --- nginx serving imgedge's (f) and (g) bytes as static files
NG="$RES/nginx"; mkdir -p "$NG/logs" "$NG/tmp" "$NG/static"
cp "$RES/cached-a.webp" "$NG/static/a.webp"; cp "$RES/cached-g.webp" "$NG/static/g.webp"
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
nginx -p "$NG" -c "$NG/nginx.conf" -g 'daemon off;' & NGINX=$!; PIDS+=("$NGINX"); sleep 0.5

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

port_of() { case $1 in sharp) echo 3900;; thumbor) echo 3902;; nginx) echo 3901;;
  imgedge) case $2 in f) echo 3911;; g) echo 3912;; *) echo 3910;; esac;; esac; }
# Who serves scenario $1: thumbor only the cold transforms, nginx only the hits' bytes.
servers() {
  local w="sharp"
  if [ "$THUMBOR" = 1 ] && [ -n "${THUMBOR_URL[$1]:-}" ]; then w+=" thumbor"; fi
  if [ -n "${NGINX_URL[$1]:-}" ]; then w+=" nginx"; fi
  echo "$w imgedge"
}
url_of() { case $1 in sharp) echo "${SHARP_URL[$2]}";; thumbor) echo "${THUMBOR_URL[$2]}";; nginx) echo "${NGINX_URL[$2]}";; esac; }
pids_of() { # who scenario -> the server's processes (with a parent's workers)
  case $1 in
    sharp) echo "$SHARP";; thumbor) echo "$THUMB" $(pgrep -P "$THUMB");; nginx) echo "$NGINX" $(pgrep -P "$NGINX");;
    imgedge) case $2 in f) echo "$HIT";; g) echo "$STORE";; *) echo "$MISS";; esac;;
  esac
}
tiers() { # port -> "hit-memory hit-store miss" counts from /metrics
  curl -s "http://127.0.0.1:$1/metrics" | awk '/^imgedge_cache_requests_total/ { match($0, /tier="[^"]+"/); n[substr($0, RSTART + 6, RLENGTH - 7)] = $NF }
    END { printf "%d %d %d\n", n["hit-memory"], n["hit-store"], n["miss"] }'
}
to_ms() { awk '{ v = $1 + 0; u = $1; sub(/^[0-9.]+/, "", u)
  if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000; printf "%.3f\n", v }'; }
wrk_on() { # who scenario duration [connections] [threads]  (wrk's output on stdout)
  local p; p=$(port_of "$1" "$2")
  if [ "$1" = imgedge ]; then
    URLS="$RES/urls-$2.txt" wrk -t"${5:-$WT}" -c"${4:-$CONC}" -d"$3s" --timeout "$TIMEOUT" --latency -s "$RES/walk.lua" "http://127.0.0.1:$p"
  else
    wrk -t"${5:-$WT}" -c"${4:-$CONC}" -d"$3s" --timeout "$TIMEOUT" --latency "http://127.0.0.1:$p$(url_of "$1" "$2")"
  fi
}
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }   # the whole machine
# CPU time of this shell's finished children (wrk): `times`, written to a file by the shell itself.
child_ticks() { awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } printf "%d", t * 100 }' "$1"; }
cpu_ticks() { # pids -> their CPU time so far (clock ticks, every thread)
  for p in "$@"; do sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}'; done | awk '{s += $1} END {print s + 0}'
}
# A server goes on with the requests wrk abandoned when it stopped (seconds of work for AVIF):
# before each run, wait (at most 2 min) until every server is idle, so none eats into the next.
all_pids() { echo "$SHARP ${THUMB:+$THUMB $(pgrep -P "$THUMB")} $NGINX $(pgrep -P "$NGINX") $MISS $HIT $STORE"; }
settle() {
  local all a b t0=$SECONDS
  all=$(all_pids); a=$(cpu_ticks $all)
  for _ in $(seq 1 240); do sleep 0.5; b=$(cpu_ticks $all); [ $((b - a)) -le 3 ] && break; a=$b; done
  [ $((SECONDS - t0)) -lt 2 ] || echo "  (waited $((SECONDS - t0)) s for the servers to go idle)"
}
run() { # who scenario rep
  local who=$1 s=$2 out="$RES/$1.$2.rep$3.txt" d=$DUR pids before="" after="" p
  [ "$s" = h ] && d=$DUR_H
  pids=$(pids_of "$who" "$s"); settle
  for p in $pids; do echo 5 > "/proc/$p/clear_refs" 2>/dev/null || true; done   # VmHWM := VmRSS
  [ "$who" = imgedge ] && before=$(tiers "$(port_of imgedge "$s")")
  local busy0 srv0 kids0 busy1 srv1 kids1 others all; all=$(all_pids)
  times > "$RES/times0"; busy0=$(busy_ticks); srv0=$(cpu_ticks $all)
  wrk_on "$who" "$s" "$d" > "$out"
  busy1=$(busy_ticks); srv1=$(cpu_ticks $all); times > "$RES/times1"
  kids0=$(child_ticks "$RES/times0"); kids1=$(child_ticks "$RES/times1")
  others=$(awk -v b="$((busy1 - busy0))" -v s="$((srv1 - srv0))" -v k="$((kids1 - kids0))" -v d="$d" \
    'BEGIN { o = (b - s - k) / d; printf "%d", o < 0 ? 0 : o }')   # % of one core
  [ "$who" = imgedge ] && after=$(tiers "$(port_of imgedge "$s")")
  local rss rps non2xx p99 reqs tmo tier="- - -"
  rss=$(for p in $pids; do hwm "$p"; echo; done | awk '{s += $1} END {print s + 0}')
  rps=$(awk '/^Requests\/sec/{print $2}' "$out"); non2xx=$(awk '/Non-2xx/{print $NF}' "$out")
  p99=$(awk '$1 == "99%" {print $2}' "$out" | to_ms); reqs=$(awk '/requests in/{print $1}' "$out")
  tmo=$(awk '/Socket errors/{print $NF}' "$out")
  if [ -n "$before" ]; then tier=$(echo "$before $after" | awk '{print $4 - $1, $5 - $2, $6 - $3}'); fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$who" "$s" "$rps" "${non2xx:-0}" "$p99" "$rss" "$reqs" "${tmo:-0}" "$tier" "$others" >> "$RES/raw.tsv"
  echo "  $who $s rep$3: $rps req/s, p99 $p99 ms, peak RSS $rss MB${non2xx:+, non-2xx $non2xx}${tmo:+, timeouts $tmo}$([ -n "$before" ] && echo ", tiers (memory store miss) $tier"), other processes $others % of a core"
}

echo "warm-up"
for s in $SCEN; do
  for who in $(servers "$s"); do wrk_on "$who" "$s" 2 2 1 > /dev/null; done
done
for rep in $(seq 1 "$REPS"); do
  for s in $SCEN; do
    for who in $(servers "$s"); do run "$who" "$s" "$rep"; done
  done
done

med() { sort -g | awk '{a[NR]=$1} END{ if (NR == 0) print ""; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }
col() { awk -v w="$1" -v s="$2" -v c="$3" -F'\t' '$1==w && $2==s {print $c}' "$RES/raw.tsv"; }
rps() { col "$1" "$2" 3 | med; }
p99() { col "$1" "$2" 5 | med; }
rss() { col "$1" "$2" 6 | sort -g | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "" || b == 0) printf "%7s", "-"; else printf "%7.2f", a / b }'; }
cell() { # who scenario -> "req/s p99 RSS" columns, dashes when it did not run
  local r; r=$(rps "$1" "$2")
  if [ -z "$r" ]; then printf ' | %8s %7s %5s' - - -; return; fi
  awk -v r="$r" -v p="$(p99 "$1" "$2")" -v m="$(rss "$1" "$2")" 'BEGIN{
    printf " | %8s %7s %5d", (r >= 1000 ? sprintf("%.0f", r) : sprintf("%.1f", r)),
      (p < 1 ? sprintf("%.2f", p) : p < 100 ? sprintf("%.1f", p) : sprintf("%.0f", p)), m }'
}
desc() { case $1 in a) echo "(a) 12MP jpeg -> w300 webp q80, miss";; b) echo "(b) 12MP jpeg -> w1200 jpeg q80, miss";;
  c) echo "(c) 2MP jpeg -> w300 webp q80, miss";; d) echo "(d) png+alpha -> w300 png, miss";;
  e) echo "(e) original 2MP jpeg";; f) echo "(f) (a)'s output, memory hit";; g) echo "(g) (a)'s output, store hit";;
  h) echo "(h) 2MP jpeg -> w600 avif q60, miss";; esac; }
expected_tier() { case $1 in e) echo none;; f) echo hit-memory;; g) echo hit-store;; *) echo miss;; esac; }
{
  echo "$(date -Is) $(nproc) cpus; DUR=$DUR (h: $DUR_H) CONC=$CONC REPS=$REPS WRK_THREADS=$WT COPIES=$COPIES; imgedge $BIN"
  echo "req/s and p99 (ms): medians over reps; RSS: peak resident MB during the case's runs (thumbor, nginx: sum of their processes)"
  printf '%-38s | %-22s | %-22s | %-22s | %s\n' "" sharp thumbor nginx imgedge
  printf '%-38s' scenario; for _ in 1 2 3 4; do printf ' | %8s %7s %5s' req/s p99 RSS; done; echo "  ×sharp ×faster  ×nginx"
  for s in $SCEN; do
    x=$(rps sharp "$s"); t=$(rps thumbor "$s"); n=$(rps nginx "$s"); y=$(rps imgedge "$s")
    faster=$(awk -v a="${x:-0}" -v b="${t:-0}" 'BEGIN{print (b > a) ? b : a}')
    printf '%-38s' "$(desc "$s")"
    for who in sharp thumbor nginx imgedge; do cell "$who" "$s"; done
    printf ' %s %s %s\n' "$(ratio "$y" "$x")" "$(ratio "$y" "$faster")" "$(ratio "$y" "$n")"
  done
  maxrss() { # who [imgedge port] -> the largest per-case peak, or -
    local m; m=$(for s in $SCEN; do if [ "$1" != imgedge ] || [ "$(port_of imgedge "$s")" = "${2:-}" ]; then rss "$1" "$s"; fi; done | sort -g | tail -1)
    echo "${m:--}"; }
  echo "peak RSS over the measured runs: sharp $(maxrss sharp) MB, thumbor $(maxrss thumbor) MB, nginx $(maxrss nginx) MB," \
    "imgedge cache-less $(maxrss imgedge 3910) MB, memory cache $(maxrss imgedge 3911) MB, store only $(maxrss imgedge 3912) MB"
  echo "imgedge cache tiers (/metrics deltas summed over reps) vs wrk's completed requests:"
  for s in $SCEN; do
    paste <(col imgedge "$s" 7) <(col imgedge "$s" 9) | awk -v s="$s" -v want="$(expected_tier "$s")" -F'\t' '
      { n += $1; split($2, t, " "); m += t[1]; st += t[2]; mi += t[3] }
      END { seen = (want == "hit-memory") ? m : (want == "hit-store") ? st : (want == "miss") ? mi : m + st + mi
        other = m + st + mi - (want == "none" ? 0 : seen)
        ok = (want == "none") ? (seen == 0) : (other == 0 && seen >= n)
        printf "  (%s) wrk %d; hit-memory %d, hit-store %d, miss %d; expected %s: %s\n", s, n, m, st, mi, want, ok ? "ok" : "UNEXPECTED" }'
  done
  awk -F'\t' '$10 > m { m = $10; w = $1 " " $2 } END { printf "CPU taken by other processes (neither the servers nor wrk) during a run: at most %d %% of a core%s\n", m, m ? " (" w ")" : "" }' "$RES/raw.tsv"
  grep -h Non-2xx "$RES"/*.txt | sort | uniq -c || true
  grep -h "Socket errors" "$RES"/*.rep*.txt | sort | uniq -c || true
} | tee "$RES/table.txt"

# --- quality: one output per server for the transform cases, SSIM against a Pillow reference
QCASES=""; for s in a b c d h; do case " $SCEN " in *" $s "*) QCASES+="$s ";; esac; done
if [ "$QUALITY" = 1 ] && [ -n "$QCASES" ]; then
  if QPY=$(quality_python); then
    : > "$RES/quality.tsv"
    for s in $QCASES; do
      src=$(sed -n 's#^/t/\([^?]*\)?.*#\1#p' <<< "${SHARP_URL[$s]}")
      for who in $(servers "$s"); do
        if [ "$who" = imgedge ]; then u="http://127.0.0.1:3910$(head -1 "$RES/urls-$s.txt")"
        else u="http://127.0.0.1:$(port_of "$who" "$s")$(url_of "$who" "$s")"; fi
        printf '%s\t%s\t%s\t%s\n' "$s" "$who" "$src" "$u" >> "$RES/quality.tsv"
      done
    done
    echo; "$QPY" "$HERE/quality.py" "$RES/quality.tsv" --corpus "$CORPUS" | tee -a "$RES/table.txt" || echo "quality: some fetches failed"
  else
    echo "quality: skipped (no python with Pillow + numpy; see quality_python in benches/bench-lib.sh)" | tee -a "$RES/table.txt"
  fi
fi
echo "results: $RES"
