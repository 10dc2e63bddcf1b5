#!/usr/bin/env bash
# HTTP load comparison, one run, same machine: imgedge vs the two peers in benches/peers (Express +
# Sharp, and thumbor from PyPI with Pillow's libjpeg-turbo) on the benchmark corpus, imgedge's
# cache hits (memory and local store) vs nginx serving the same bytes, and then the quality of
# each server's output (benches/quality.py: bytes and SSIM against a Pillow Lanczos reference).
# Needs only cargo, node + npm, python3 -m venv + pip (thumbor, and Pillow + numpy for the
# quality pass, once each), and apt (wrk, nginx-light and the corpus's photos).
#
#   benches/http-load.sh                    # DUR=10 CONC=8 CONC_I=2 REPS=3 WRK_THREADS=2
#                                           # SCEN="a b c d e f g h j q i-jpeg i-png i-webp i-avif"
#   SCEN="i-jpeg i-png i-webp i-avif" benches/http-load.sh   # only the imgproxy-shaped cases
#   IMGEDGE_BIN=/tmp/imgedge-bin benches/http-load.sh   # that binary, no cargo build
#   IMGEDGE_ENV="MALLOC_MMAP_THRESHOLD_=1048576" benches/http-load.sh   # extra environment for imgedge
#   THUMBOR=0 benches/http-load.sh          # without thumbor (the cold cases a-d, h and i-* only have it)
#   THUMBOR_MODE=processes benches/http-load.sh   # thumbor as one `--processes N`, not behind nginx
#   QUALITY=0 benches/http-load.sh          # without the quality pass
#   DUR_H=40 benches/http-load.sh           # seconds per run of (h) and (i-avif) (default: 4 × DUR, at least 30)
#
# thumbor runs as it is deployed (benches/peers/thumbor/run.sh): one process per core, each with
# ENGINE_THREADPOOL_SIZE = cores, behind nginx (an upstream block, round-robin, keep-alive) on
# :3902. `--processes N` (THUMBOR_MODE=processes) lets the kernel give all of wrk's keep-alive
# connections to one process, and its req/s swings 2x between runs.
#
# imgedge's own cases, no peer making the same: (j) (c) as JPEG XL q80 (`fmt_jxl`: a build with
# FEATURES=libjxl, else "unsupported (400)"), (q) (c) with `q_auto` (SSIMULACRA2 77) in place of
# q80 — set beside (c) for req/s, and in the quality pass for bytes and SSIM.
#
# The imgproxy-shaped cases (i-jpeg, i-png, i-webp, i-avif), after imgproxy's
# image-servers-benchmark: a 2040x1360 photo (DIV2K's size) served in its own format — JPEG q80
# -> JPEG q80, PNG -> PNG, WebP q75 -> WebP q75, AVIF q65 -> AVIF q65 — fitted inside 512x512,
# at CONC_I (2) connections. An imgedge that refuses an original (AVIF: 415 in builds without
# its decoder) shows "unsupported (415)" in that case's imgedge cell; so does any server whose
# first answer to a case is a 4xx (one request each before the runs; a 5xx or none: "failed"),
# and the run goes on without it. (i-avif) runs as long as (h): DUR_H.
#
# Cache misses: an imgedge with both caches off (CACHE_MEMORY_MB=0, CACHE_STORE_VARIANTS=false)
# and each corpus file uploaded COPIES times; wrk walks the copies so concurrent requests never
# share a transform (single flight would otherwise merge them), so every request decodes,
# resizes and encodes, as Sharp does. Memory-cache hits (f): a second imgedge with caches on, one
# URL. Store hits (g): a third with the memory cache off and variants stored, one URL made once.
# AVIF (h) answers take seconds at c=8, so its runs are longer (DUR_H) and wrk's timeout is 60 s
# everywhere (a reply later than the timeout would drop out of the latency histogram). Each run
# starts once every server is idle (they finish the requests wrk left in flight).
# Reports medians of REPS interleaved runs (req/s, p99 latency), and for the peers their best rep
# too (they are noisy), ratios, and each server's peak RSS (VmHWM, reset before each run: the
# largest over the case's runs), and which cache tier answered imgedge's requests (its /metrics
# counters before and after each run). Then one line per goal, met or missed, with its ratio
# ("goals" below): imgedge's median against each peer's median, or the peer's best rep where that
# is better (marked *) — cold a, b, c ≥ 1.5× the faster of Sharp and thumbor, d ≥ 2×, and imgedge's
# p99 the lowest of the three in a-d; AVIF (h) ≥ 1× both; i-* imgedge/thumbor ≥ imgproxy's
# published ratio to thumbor; memory hits (f) ≥ 1× nginx, store hits (g) ≥ 0.6×. A req/s goal
# against one peer also shows the ratio rep by rep, which a machine whose speed drifts during the
# run (a peer's best rep from a fast minute, imgedge's median from slow ones) leaves readable.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$HERE/.." && pwd)"
PEERS="$HERE/peers"
DUR="${DUR:-10}"; CONC="${CONC:-8}"; CONC_I="${CONC_I:-2}"; REPS="${REPS:-3}"; WT="${WRK_THREADS:-2}"; COPIES="${COPIES:-32}"
DUR_H="${DUR_H:-$(( DUR * 4 > 30 ? DUR * 4 : 30 ))}"; TIMEOUT="${WRK_TIMEOUT:-60s}"
SCEN="${SCEN:-a b c d e f g h j q i-jpeg i-png i-webp i-avif}"; THUMBOR="${THUMBOR:-1}"; QUALITY="${QUALITY:-1}"
export THUMBOR_MODE="${THUMBOR_MODE:-nginx}"
COLD="a b c d h j q i-jpeg i-png i-webp i-avif"   # the transform cases: imgedge without caches, thumbor
in_scen() { case " $SCEN " in *" $1 "*) return 0;; esac; return 1; }
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
declare -A FILE=([a]=photo-12mp.jpg [b]=photo-12mp.jpg [c]=photo-2mp.jpg [d]=alpha-1024.png [h]=photo-2mp.jpg
  [j]=photo-2mp.jpg [q]=photo-2mp.jpg
  [i-jpeg]=photo-2.8mp.jpg [i-png]=photo-2.8mp.png [i-webp]=photo-2.8mp.webp [i-avif]=photo-2.8mp.avif)
declare -A OPS=([a]="w_300,q_80,fmt_webp" [b]="w_1200,q_80,fmt_jpeg" [c]="w_300,q_80,fmt_webp" [d]="w_300,fmt_png"
  [h]="w_600,q_60,fmt_avif" [j]="w_300,q_80,fmt_jxl" [q]="w_300,q_auto,fmt_webp"
  [i-jpeg]="w_512,h_512,fit_inside,q_80,fmt_jpeg" [i-png]="w_512,h_512,fit_inside,fmt_png"
  [i-webp]="w_512,h_512,fit_inside,q_75,fmt_webp" [i-avif]="w_512,h_512,fit_inside,q_65,fmt_avif")
declare -A SHARP_URL=(
  [a]="/t/photo-12mp.jpg?w=300&fmt=webp&q=80" [b]="/t/photo-12mp.jpg?w=1200&fmt=jpeg&q=80"
  [c]="/t/photo-2mp.jpg?w=300&fmt=webp&q=80" [d]="/t/alpha-1024.png?w=300&fmt=png"
  [e]="/raw/photo-2mp.jpg" [f]="/raw/cached-a.webp" [g]="/raw/cached-g.webp"
  [h]="/t/photo-2mp.jpg?w=600&fmt=avif&q=60"
  [i-jpeg]="/t/photo-2.8mp.jpg?w=512&h=512&fit=inside&fmt=jpeg&q=80"
  [i-png]="/t/photo-2.8mp.png?w=512&h=512&fit=inside&fmt=png"
  [i-webp]="/t/photo-2.8mp.webp?w=512&h=512&fit=inside&fmt=webp&q=75"
  [i-avif]="/t/photo-2.8mp.avif?w=512&h=512&fit=inside&fmt=avif&q=65")
declare -A THUMBOR_URL=(
  [a]="/unsafe/300x0/filters:format(webp):quality(80)/photo-12mp.jpg"
  [b]="/unsafe/1200x0/filters:format(jpeg):quality(80)/photo-12mp.jpg"
  [c]="/unsafe/300x0/filters:format(webp):quality(80)/photo-2mp.jpg"
  [d]="/unsafe/300x0/filters:format(png)/alpha-1024.png"
  [h]="/unsafe/600x0/filters:format(avif):quality(60)/photo-2mp.jpg"
  [i-jpeg]="/unsafe/fit-in/512x512/filters:format(jpeg):quality(80)/photo-2.8mp.jpg"
  [i-png]="/unsafe/fit-in/512x512/filters:format(png)/photo-2.8mp.png"
  [i-webp]="/unsafe/fit-in/512x512/filters:format(webp):quality(75)/photo-2.8mp.webp"
  [i-avif]="/unsafe/fit-in/512x512/filters:format(avif):quality(65)/photo-2.8mp.avif")
declare -A NGINX_URL=([f]="/a.webp" [g]="/g.webp")
declare -A UNSUP   # "who.case" -> why that server has no runs in the case: "unsupported (415)"
TOKEN=$(setup_owner 3910)
# The originals the cases in SCEN need, each uploaded COPIES times; an original imgedge refuses
# (AVIF in builds without its decoder: 415) marks the cases that use it unsupported, and no more.
NEED=""
for s in $COLD; do in_scen "$s" && case " $NEED " in *" ${FILE[$s]} "*) ;; *) NEED+="${FILE[$s]} ";; esac; done
in_scen e && case " $NEED " in *" photo-2mp.jpg "*) ;; *) NEED+="photo-2mp.jpg ";; esac
echo "uploading $COPIES copies of each of ${NEED% } to the cache-less imgedge…"
declare -A IDS REFUSED
for f in $NEED; do
  IDS[$f]=""
  for _ in $(seq 1 "$COPIES"); do
    if id=$(try_upload 3910 "$TOKEN" "$CORPUS/$f"); then IDS[$f]+="$id "
    else REFUSED[$f]=$id; echo "imgedge refused the upload of $f: HTTP $id"; break; fi
  done
done
for s in $COLD; do
  in_scen "$s" || continue
  if [ -n "${REFUSED[${FILE[$s]}]:-}" ]; then UNSUP[imgedge.$s]="unsupported (${REFUSED[${FILE[$s]}]})"; continue; fi
  : > "$RES/urls-$s.txt"
  for id in ${IDS[${FILE[$s]}]}; do sign 3910 "$TOKEN" "$id" "${OPS[$s]}" >> "$RES/urls-$s.txt"; done
done
if in_scen e; then
  ORIG_ID=$(echo ${IDS[photo-2mp.jpg]} | cut -d' ' -f1)
  curl -s "http://127.0.0.1:3910/v1/images/$ORIG_ID" -H "Authorization: Bearer $TOKEN" | json '["url"]' > "$RES/urls-e.txt"
fi
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
# Who serves scenario $1: thumbor only the cold transforms, nginx only the hits' bytes; not those
# found unsupported (UNSUP).
servers() {
  local w="" who
  for who in sharp thumbor nginx imgedge; do
    case $who in
      sharp) [ -n "${SHARP_URL[$1]:-}" ] || continue;;
      thumbor) { [ "$THUMBOR" = 1 ] && [ -n "${THUMBOR_URL[$1]:-}" ]; } || continue;;
      nginx) [ -n "${NGINX_URL[$1]:-}" ] || continue;;
    esac
    [ -z "${UNSUP[$who.$1]:-}" ] && w+="$who "
  done
  echo "$w"
}
url_of() { case $1 in sharp) echo "${SHARP_URL[$2]}";; thumbor) echo "${THUMBOR_URL[$2]}";; nginx) echo "${NGINX_URL[$2]}";; esac; }
full_url() { # who scenario -> the URL of its (first) request
  if [ "$1" = imgedge ]; then echo "http://127.0.0.1:$(port_of imgedge "$2")$(head -1 "$RES/urls-$2.txt")"
  else echo "http://127.0.0.1:$(port_of "$1" "$2")$(url_of "$1" "$2")"; fi
}
# A server's processes: thumbor's are run.sh's children (the thumbor processes and nginx, whose
# workers are its children) or, with THUMBOR_MODE=processes, the thumbor parent and its forks;
# the script itself is left out.
server_tree() { local p; for p in $(proc_tree "$1"); do [ "$(cat "/proc/$p/comm" 2>/dev/null)" = run.sh ] || echo "$p"; done; }
pids_of() { # who scenario -> the server's processes (with a parent's workers)
  case $1 in
    sharp) echo "$SHARP";; thumbor) server_tree "$THUMB";; nginx) server_tree "$NGINX";;
    imgedge) case $2 in f) echo "$HIT";; g) echo "$STORE";; *) echo "$MISS";; esac;;
  esac
}
conc_of() { case $1 in i-*) echo "$CONC_I";; *) echo "$CONC";; esac; }      # wrk's connections
dur_of() { case $1 in h|i-avif) echo "$DUR_H";; *) echo "$DUR";; esac; }   # seconds per run
want_type() { case $1 in a|c|f|g|i-webp) echo image/webp;; b|e|i-jpeg) echo image/jpeg;; d|i-png) echo image/png;;
  h|i-avif) echo image/avif;; j) echo image/jxl;; q) echo image/webp;; esac; }
tiers() { # port -> "hit-memory hit-store miss" counts from /metrics
  curl -s "http://127.0.0.1:$1/metrics" | awk '/^imgedge_cache_requests_total/ { match($0, /tier="[^"]+"/); n[substr($0, RSTART + 6, RLENGTH - 7)] = $NF }
    END { printf "%d %d %d\n", n["hit-memory"], n["hit-store"], n["miss"] }'
}
to_ms() { awk '{ v = $1 + 0; u = $1; sub(/^[0-9.]+/, "", u)
  if (u == "us") v /= 1000; else if (u == "s") v *= 1000; else if (u == "m") v *= 60000; printf "%.3f\n", v }'; }
wrk_on() { # who scenario duration [connections] [threads]  (wrk's output on stdout)
  local p c t; p=$(port_of "$1" "$2"); c=${4:-$(conc_of "$2")}; t=${5:-$WT}
  [ "$t" -le "$c" ] || t=$c   # wrk needs a connection per thread
  # A list of one URL (the hits, f and g) is fetched as the peers' one URL is, without the Lua
  # walker: its per-request cost is the client's, on the same two cores, and would count against
  # imgedge alone.
  if [ "$1" = imgedge ] && [ "$(wc -l < "$RES/urls-$2.txt")" -le 1 ]; then
    wrk -t"$t" -c"$c" -d"$3s" --timeout "$TIMEOUT" --latency "http://127.0.0.1:$p$(cat "$RES/urls-$2.txt")"
  elif [ "$1" = imgedge ]; then
    URLS="$RES/urls-$2.txt" wrk -t"$t" -c"$c" -d"$3s" --timeout "$TIMEOUT" --latency -s "$RES/walk.lua" "http://127.0.0.1:$p"
  else
    wrk -t"$t" -c"$c" -d"$3s" --timeout "$TIMEOUT" --latency "http://127.0.0.1:$p$(url_of "$1" "$2")"
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
all_pids() { echo "$SHARP ${THUMB:+$(proc_tree "$THUMB")} $(proc_tree "$NGINX") $MISS $HIT $STORE"; }
settle() {
  local all a b t0=$SECONDS
  all=$(all_pids); a=$(cpu_ticks $all)
  for _ in $(seq 1 240); do sleep 0.5; b=$(cpu_ticks $all); [ $((b - a)) -le 3 ] && break; a=$b; done
  [ $((SECONDS - t0)) -lt 2 ] || echo "  (waited $((SECONDS - t0)) s for the servers to go idle)"
}
run() { # who scenario rep
  local who=$1 s=$2 out="$RES/$1.$2.rep$3.txt" d pids before="" after="" p
  d=$(dur_of "$s")
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

# One request per server and case before anything else: a 4xx marks the server unsupported in
# that case (it gets no runs, its cell says so), and an unexpected Content-Type is reported.
echo "checking one answer per server and case…"
for s in $SCEN; do
  for who in $(servers "$s"); do
    r=$(curl -s -o /dev/null -m 300 -w '%{http_code} %{content_type}' "$(full_url "$who" "$s")" || true)
    code=${r%% *}; type=${r#* }
    case $code in
      2??) [ "$type" = "$(want_type "$s")" ] || echo "WARNING: ($s) $who answers Content-Type '$type', expected $(want_type "$s")" >&2;;
      4??) UNSUP[$who.$s]="unsupported ($code)"; echo "  ($s) $who: HTTP $code, left out of the case";;
      *) UNSUP[$who.$s]="failed (${code:-000})"; echo "  ($s) $who: HTTP ${code:-000}, left out of the case" >&2;;
    esac
  done
done
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
col() { awk -v w="$1" -v s="$2" -v c="$3" -F'\t' '$1==w && $2==s {print $c}' "$RES/raw.tsv" 2>/dev/null; }
rps() { col "$1" "$2" 3 | med; }
# p99 over the reps that completed a request (wrk reports 0 for one that completed none)
p99s() { awk -v w="$1" -v s="$2" -F'\t' '$1==w && $2==s && $7 > 0 {print $5}' "$RES/raw.tsv" 2>/dev/null; }
p99() { p99s "$1" "$2" | med; }
rss() { col "$1" "$2" 6 | sort -g | tail -1; }
best_rps() { col "$1" "$2" 3 | sort -g | tail -1; }   # a peer's best rep
by_rep() { # scenario peer -> imgedge's req/s over the peer's, rep by rep ("1.56 / 1.55 / 1.42"): the
  # reps are interleaved, so each pair ran minutes apart at most, on a machine whose speed may drift
  paste <(col imgedge "$1" 3) <(col "$2" "$1" 3) |
    awk -F'\t' '$1 != "" && $2 + 0 > 0 { printf "%s%.2f", n++ ? " / " : "", $1 / $2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "" || b == 0) printf "%8s", "-"; else printf "%8.2f", a / b }'; }
num() { awk -v r="$1" 'BEGIN{ if (r == "") print "-"; else if (r >= 1000) printf "%.0f", r; else printf "%.1f", r }'; }
ms() { awk -v p="$1" 'BEGIN{ if (p == "") print "-"; else if (p < 1) printf "%.2f", p; else if (p < 100) printf "%.1f", p; else printf "%.0f", p }'; }
DESCW=44; PEERW=31; OWNW=22   # column widths: the case, a peer's four figures, imgedge's three
cell() { # who scenario -> "req/s [best] p99 RSS" columns (best: peers only), dashes when it did not run, or why not
  local r w=$OWNW; [ "$1" = imgedge ] || w=$PEERW
  if [ -n "${UNSUP[$1.$2]:-}" ]; then printf " | %-${w}s" "${UNSUP[$1.$2]}"; return 0; fi
  r=$(rps "$1" "$2")
  if [ -z "$r" ]; then
    if [ "$1" = imgedge ]; then printf ' | %8s %7s %5s' - - -; else printf ' | %8s %8s %7s %5s' - - - -; fi
  elif [ "$1" = imgedge ]; then
    printf ' | %8s %7s %5s' "$(num "$r")" "$(ms "$(p99 "$1" "$2")")" "$(rss "$1" "$2")"
  else
    printf ' | %8s %8s %7s %5s' "$(num "$r")" "$(num "$(best_rps "$1" "$2")")" "$(ms "$(p99 "$1" "$2")")" "$(rss "$1" "$2")"
  fi
}
desc() { case $1 in a) echo "(a) 12MP jpeg -> w300 webp q80, miss";; b) echo "(b) 12MP jpeg -> w1200 jpeg q80, miss";;
  c) echo "(c) 2MP jpeg -> w300 webp q80, miss";; d) echo "(d) png+alpha -> w300 png, miss";;
  e) echo "(e) original 2MP jpeg";; f) echo "(f) (a)'s output, memory hit";; g) echo "(g) (a)'s output, store hit";;
  h) echo "(h) 2MP jpeg -> w600 avif q60, miss";;
  j) echo "(j) 2MP jpeg -> w300 jxl q80, miss";; q) echo "(q) 2MP jpeg -> w300 webp q_auto, miss";;
  i-jpeg) echo "(i-jpeg) 2.8MP jpeg q80 -> 512 box jpeg q80";; i-png) echo "(i-png) 2.8MP png -> 512 box png";;
  i-webp) echo "(i-webp) 2.8MP webp q75 -> 512 box webp q75";; i-avif) echo "(i-avif) 2.8MP avif q65 -> 512 box avif q65";; esac; }
expected_tier() { case $1 in e) echo none;; f) echo hit-memory;; g) echo hit-store;; *) echo miss;; esac; }
thumbor_how() {
  if [ "$THUMBOR" != 1 ]; then echo "thumbor not run"
  elif [ "$THUMBOR_MODE" = processes ]; then echo "thumbor --processes ${PROCESSES:-$(nproc)}"
  else echo "thumbor: ${PROCESSES:-$(nproc)} processes behind nginx (upstream, round-robin, keep-alive)"; fi
}

# --- goals: imgedge's median against each peer's median, or the peer's best rep where that is
# better (its highest req/s, its lowest p99), marked * in the goal's line.
# imgproxy's published req/s over thumbor's in its image-servers-benchmark, per format:
declare -A IMGPROXY_RATIO=([i-jpeg]=1.38 [i-png]=1.70 [i-webp]=1.54 [i-avif]=1.15)
NMET=0; NMISS=0
verdict() { # 1|0 text
  if [ "$1" = 1 ]; then NMET=$((NMET + 1)); printf '  %-7s %s\n' met "$2"
  else NMISS=$((NMISS + 1)); printf '  %-7s %s\n' missed "$2"; fi
}
na() { printf '  %-7s %s\n' n/a "$1"; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN{ exit !(a == "inf" || (b != "inf" && a + 0 >= b + 0)) }'; }
r2() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b + 0 > 0) printf "%.2f", a / b; else print (a + 0 > 0) ? "inf" : "0.00" }'; }   # a / b, as printed and judged
goal_rps() { # peer scenario -> its req/s for the goals: the median, or its best rep (marked *) where higher
  local m b; m=$(rps "$1" "$2"); [ -n "$m" ] || return 0
  b=$(best_rps "$1" "$2"); awk -v m="$m" -v b="$b" 'BEGIN{ if (b + 0 > m + 0) print b "*"; else print m }'
}
goal_p99() { # peer scenario -> its p99 for the goals: the median, or its lowest rep (marked *) where lower
  local m b; m=$(p99 "$1" "$2"); [ -n "$m" ] || return 0
  b=$(p99s "$1" "$2" | sort -g | head -1); awk -v m="$m" -v b="$b" 'BEGIN{ if (b + 0 < m + 0) print b "*"; else print m }'
}
shown() { local v=${2%\*}; printf '%s%s' "$("$1" "$v")" "${2#"$v"}"; }   # num|ms value[*]
absent() { # peer scenario -> why it has no figure
  if [ -n "${UNSUP[$1.$2]:-}" ]; then echo "${UNSUP[$1.$2]}"
  elif [ "$1" = thumbor ] && [ "$THUMBOR" != 1 ]; then echo "THUMBOR=0"; else echo "no runs"; fi
}
imgedge_ok() { # scenario text -> 0 when imgedge has runs; else prints the goal (missed when unsupported)
  if [ -n "${UNSUP[imgedge.$1]:-}" ]; then verdict 0 "$2 imgedge ${UNSUP[imgedge.$1]}"; return 1; fi
  if [ -z "$(rps imgedge "$1")" ]; then na "$2 imgedge has no runs"; return 1; fi
}
goal_faster() { # scenario factor: imgedge req/s >= factor × the faster of Sharp and thumbor
  local s=$1 k=$2 y v who best="" bw="" notes="" r text="($1) req/s ≥ $2× the faster of Sharp and thumbor:"
  imgedge_ok "$s" "$text" || return 0
  y=$(rps imgedge "$s")
  for who in sharp thumbor; do
    v=$(goal_rps "$who" "$s")
    if [ -z "$v" ]; then notes+=" ($who: $(absent "$who" "$s"))"; continue; fi
    if [ -z "$best" ] || ! ge "${best%\*}" "${v%\*}"; then best=$v; bw=$who; fi
  done
  if [ -z "$best" ]; then na "$text no peer ran$notes"; return 0; fi
  r=$(r2 "$y" "${best%\*}")
  verdict "$(ge "$r" "$k" && echo 1 || echo 0)" \
    "$text imgedge $(num "$y") / $bw $(shown num "$best") = ${r}× (rep by rep: $(by_rep "$s" "$bw"))$notes"
}
goal_p99_lowest() { # scenario: imgedge's p99 at or under both peers'
  local s=$1 y v who low="" parts="" notes="" r text="($1) p99 the lowest of the three:"
  imgedge_ok "$s" "$text" || return 0
  y=$(p99 imgedge "$s")
  for who in sharp thumbor; do
    v=$(goal_p99 "$who" "$s")
    if [ -z "$v" ]; then notes+=" ($who: $(absent "$who" "$s"))"; continue; fi
    parts+=", $who $(shown ms "$v")"
    if [ -z "$low" ] || ge "${low%\*}" "${v%\*}"; then low=$v; fi
  done
  if [ -z "$low" ]; then na "$text no peer ran$notes"; return 0; fi
  r=$(r2 "$y" "${low%\*}")
  verdict "$(ge "${low%\*}" "$y" && echo 1 || echo 0)" "$text imgedge $(ms "$y") ms$parts ms = ${r}× the lowest peer's$notes"
}
goal_each() { # scenario factor why peers…: imgedge req/s >= factor × each peer's
  local s=$1 k=$2 y v who ok=1 n=0 last="" lastwho="" parts="" notes="" r text
  text="($s) req/s ≥ $k× $(echo "${*:4}" | sed 's/ / and /g')$3:"; shift 3
  imgedge_ok "$s" "$text" || return 0
  y=$(rps imgedge "$s")
  for who in "$@"; do
    v=$(goal_rps "$who" "$s")
    if [ -z "$v" ]; then notes+=" ($who: $(absent "$who" "$s"))"; continue; fi
    r=$(r2 "$y" "${v%\*}"); n=$((n + 1)); ge "$r" "$k" || ok=0
    parts+="${parts:+, }${r}× $who ($(shown num "$v"))"; last="$who $(shown num "$v") = ${r}×"; lastwho=$who
  done
  if [ "$n" = 0 ]; then na "$text no peer ran$notes"; return 0; fi
  if [ "$n" = 1 ]; then parts="imgedge $(num "$y") / $last (rep by rep: $(by_rep "$s" "$lastwho"))"
  else parts="imgedge $(num "$y"): $parts"; fi
  verdict "$ok" "$text $parts$notes"
}
goals() {
  local s
  echo "goals (imgedge's median; a peer's median, or its best rep where that is better, marked *: its highest req/s, its lowest p99):"
  for s in $SCEN; do
    case $s in
      a|b|c) goal_faster "$s" 1.5; goal_p99_lowest "$s";;
      d) goal_faster d 2.0; goal_p99_lowest d;;
      h) goal_each h 1.0 "" sharp thumbor;;
      i-*) goal_each "$s" "${IMGPROXY_RATIO[$s]}" " (imgproxy's published ratio)" thumbor;;
      f) goal_each f 1.0 "" nginx;;
      g) goal_each g 0.6 "" nginx;;
    esac
  done
  echo "goals: $NMET met, $NMISS missed"
}

{
  echo "$(date -Is) $(nproc) cpus; DUR=$DUR (h, i-avif: $DUR_H) CONC=$CONC (i-*: $CONC_I) REPS=$REPS WRK_THREADS=$WT COPIES=$COPIES; imgedge $BIN; $(thumbor_how)"
  echo "req/s and p99 (ms): medians over reps; best: a peer's highest req/s over its reps (peers are noisy); RSS: peak resident MB during the case's runs (thumbor, nginx: sum of their processes)"
  printf "%-${DESCW}s | %-${PEERW}s | %-${PEERW}s | %-${PEERW}s | %s\n" "" sharp thumbor nginx imgedge
  printf "%-${DESCW}s" scenario; for _ in 1 2 3; do printf ' | %8s %8s %7s %5s' req/s best p99 RSS; done
  printf ' | %8s %7s %5s' req/s p99 RSS; echo "   ×sharp ×thumbor  ×faster   ×nginx"
  for s in $SCEN; do
    x=$(rps sharp "$s"); t=$(rps thumbor "$s"); n=$(rps nginx "$s"); y=$(rps imgedge "$s")
    faster=$(awk -v a="${x:-0}" -v b="${t:-0}" 'BEGIN{print (b > a) ? b : a}')
    printf "%-${DESCW}s" "$(desc "$s")"
    for who in sharp thumbor nginx imgedge; do cell "$who" "$s"; done
    printf ' %s %s %s %s\n' "$(ratio "$y" "$x")" "$(ratio "$y" "$t")" "$(ratio "$y" "$faster")" "$(ratio "$y" "$n")"
  done
  case " $SCEN " in *" i-"*) echo "(i-*) imgproxy-shaped: a 2040x1360 photo in one format, out in the same, fit inside 512x512, $CONC_I connections";; esac
  maxrss() { # who [imgedge port] -> the largest per-case peak, or -
    local m; m=$(for s in $SCEN; do if [ "$1" != imgedge ] || [ "$(port_of imgedge "$s")" = "${2:-}" ]; then rss "$1" "$s"; fi; done | sort -g | tail -1)
    echo "${m:--}"; }
  echo "peak RSS over the measured runs: sharp $(maxrss sharp) MB, thumbor $(maxrss thumbor) MB, nginx $(maxrss nginx) MB," \
    "imgedge cache-less $(maxrss imgedge 3910) MB, memory cache $(maxrss imgedge 3911) MB, store only $(maxrss imgedge 3912) MB"
  echo "imgedge cache tiers (/metrics deltas summed over reps) vs wrk's completed requests:"
  for s in $SCEN; do
    if [ -n "${UNSUP[imgedge.$s]:-}" ]; then echo "  ($s) imgedge ${UNSUP[imgedge.$s]}: not run"; continue; fi
    paste <(col imgedge "$s" 7) <(col imgedge "$s" 9) | awk -v s="$s" -v want="$(expected_tier "$s")" -F'\t' '
      { n += $1; split($2, t, " "); m += t[1]; st += t[2]; mi += t[3] }
      END { seen = (want == "hit-memory") ? m : (want == "hit-store") ? st : (want == "miss") ? mi : m + st + mi
        other = m + st + mi - (want == "none" ? 0 : seen)
        ok = (want == "none") ? (seen == 0) : (other == 0 && seen >= n)
        printf "  (%s) wrk %d; hit-memory %d, hit-store %d, miss %d; expected %s: %s\n", s, n, m, st, mi, want, ok ? "ok" : "UNEXPECTED" }'
  done
  [ ! -s "$RES/raw.tsv" ] || awk -F'\t' '$10 > m { m = $10; w = $1 " " $2 } END { printf "CPU taken by other processes (neither the servers nor wrk) during a run: at most %d %% of a core%s\n", m, m ? " (" w ")" : "" }' "$RES/raw.tsv"
  grep -h Non-2xx "$RES"/*.rep*.txt 2>/dev/null | sort | uniq -c || true
  grep -h "Socket errors" "$RES"/*.rep*.txt 2>/dev/null | sort | uniq -c || true
  goals
} | tee "$RES/table.txt"

# --- quality: one output per server for the transform cases, SSIM against a Pillow reference
QCASES=""; for s in $COLD; do if in_scen "$s"; then QCASES+="$s "; fi; done
if [ "$QUALITY" = 1 ] && [ -n "$QCASES" ]; then
  if QPY=$(quality_python); then
    : > "$RES/quality.tsv"
    for s in $QCASES; do
      src=${FILE[$s]}
      for who in $(servers "$s"); do
        printf '%s\t%s\t%s\t%s\n' "$s" "$who" "$src" "$(full_url "$who" "$s")" >> "$RES/quality.tsv"
      done
    done
    echo; "$QPY" "$HERE/quality.py" "$RES/quality.tsv" --corpus "$CORPUS" | tee -a "$RES/table.txt" || echo "quality: some fetches failed"
  else
    echo "quality: skipped (no python with Pillow + numpy; see quality_python in benches/bench-lib.sh)" | tee -a "$RES/table.txt"
  fi
fi
echo "results: $RES"
