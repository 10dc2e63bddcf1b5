#!/usr/bin/env bash
# AVIF calibration, run once by hand: 2 MP JPEG -> w600 AVIF, bytes and SSIM (benches/quality.py:
# Pillow Lanczos reference, 11x11 Gaussian SSIM) of imgedge at q_40 … q_95 and of the two peers
# (Express + Sharp, thumbor) at q 50, 60, 70, 80; then, for each peer output, the imgedge q with
# the same SSIM and its bytes there; then the req/s of case (h) (q 60) from the latest
# benches/http-load.sh run that had it. Servers as in http-load.sh (same ports, so not while it runs).
#
#   benches/avif-calibrate.sh
#   IMGEDGE_BIN=/tmp/imgedge-bin QS="40 50 60" PEER_QS="60" THUMBOR=0 benches/avif-calibrate.sh
#   LOAD_RES=/tmp/imgbench/imgedge-20261128-101010 benches/avif-calibrate.sh   # req/s from that run
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(cd "$HERE/.." && pwd)"
PEERS="$HERE/peers"
QS="${QS:-40 45 50 55 60 65 70 75 80 85 90 95}"; PEER_QS="${PEER_QS:-50 60 70 80}"; THUMBOR="${THUMBOR:-1}"
SRC=photo-2mp.jpg; WIDTH=600
CORPUS=/tmp/imgbench/corpus; PEER=/tmp/imgbench/peer-sharp
RES="/tmp/imgbench/avif-calibrate-$(date +%Y%m%d-%H%M%S)"; mkdir -p "$RES"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/imgedge-target}"
BIN="${IMGEDGE_BIN:-$CARGO_TARGET_DIR/release/imgedge}"
# shellcheck source=bench-lib.sh
. "$HERE/bench-lib.sh"

"$PEERS/make-corpus.sh" > /dev/null
if [ -z "${IMGEDGE_BIN:-}" ]; then
  (cd "$ROOT" && cargo build --release --bin imgedge ${FEATURES:+--features "$FEATURES"})
fi
[ -x "$BIN" ] || { echo "no imgedge binary at $BIN" >&2; exit 1; }
QPY=$(quality_python) || { echo "no python with Pillow + numpy for benches/quality.py" >&2; exit 1; }
trap cleanup EXIT

start_sharp 3900
MISS=$(start_imgedge 3910 0 false); PIDS+=("$MISS")   # caches off: every q is a fresh transform
[ "$THUMBOR" = 1 ] && start_thumbor 3902
wait_up 3900; wait_up 3910

TOKEN=$(setup_owner 3910); ID=$(upload 3910 "$TOKEN" "$CORPUS/$SRC")
M="$RES/manifest.tsv"; : > "$M"
for q in $QS; do
  printf 'h\timgedge q_%s\t%s\thttp://127.0.0.1:3910%s\n' "$q" "$SRC" "$(sign 3910 "$TOKEN" "$ID" "w_$WIDTH,q_$q,fmt_avif")" >> "$M"
done
for q in $PEER_QS; do
  printf 'h\tsharp q=%s\t%s\thttp://127.0.0.1:3900/t/%s?w=%s&fmt=avif&q=%s\n' "$q" "$SRC" "$SRC" "$WIDTH" "$q" >> "$M"
  [ "$THUMBOR" = 1 ] && printf 'h\tthumbor q=%s\t%s\thttp://127.0.0.1:3902/unsafe/%sx0/filters:format(avif):quality(%s)/%s\n' \
    "$q" "$SRC" "$WIDTH" "$q" "$SRC" >> "$M"
done
{
  echo "$(date -Is) AVIF calibration: $SRC -> w$WIDTH; imgedge $BIN"
  echo "(ms: one request at a time, decode + resize + encode; a single sample)"
  "$QPY" "$HERE/quality.py" "$M" --corpus "$CORPUS" --calibrate || echo "some fetches failed"

  # req/s at q 60: case (h) of the latest http-load run
  LOAD_RES="${LOAD_RES:-$(for d in $(ls -dt /tmp/imgbench/imgedge-* 2>/dev/null); do
    awk -F'\t' '$2 == "h" {f = 1} END {exit !f}' "$d/raw.tsv" 2>/dev/null && { echo "$d"; break; }; done)}"
  echo
  if [ -n "$LOAD_RES" ] && [ -f "$LOAD_RES/raw.tsv" ]; then
    echo "case (h) q 60 throughput from $LOAD_RES (medians over its reps):"
    for who in sharp thumbor imgedge; do
      awk -v w="$who" -F'\t' '$1 == w && $2 == "h" {print $3, $5}' "$LOAD_RES/raw.tsv" | sort -g | awk -v w="$who" '
        {r[NR] = $1; p[NR] = $2} END { if (!NR) exit; n = asort(p)
          mr = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
          mp = (n % 2) ? p[(n + 1) / 2] : (p[n / 2] + p[n / 2 + 1]) / 2
          printf "  %-8s %6.2f req/s  p99 %7.0f ms  (%d reps)\n", w, mr, mp, NR }'
    done
  else
    echo "no http-load run with case (h) in /tmp/imgbench: run benches/http-load.sh first for the req/s"
  fi
} | tee "$RES/calibration.txt"
echo "results: $RES"
