#!/usr/bin/env bash
# The second peer: thumbor from PyPI (Pillow engine: libjpeg-turbo with SIMD and JPEG draft mode).
# Installs it into a venv once, then serves the corpus in the foreground with no storage and no
# result storage (thumbor.conf beside this file), so every request loads and transforms, like a
# cache miss.
#   benches/peers/thumbor/run.sh [PORT]      (default 3902)
# URLs: /unsafe/300x0/filters:format(webp):quality(80)/photo-12mp.jpg   (0 keeps the aspect ratio)
#       /unsafe/fit-in/512x512/filters:format(jpeg):quality(80)/photo-2.8mp.jpg
#       /unsafe/300x0/filters:format(png)/alpha-1024.png                 /healthcheck
#
# Two ways to run it (THUMBOR_MODE):
#   nginx (default)  as thumbor is deployed: one single-process thumbor per core (PROCESSES) on
#                    ports PORT*10+1, PORT*10+2, … (THUMBOR_BACKEND_BASE+i), and nginx on PORT in
#                    front of them (nginx.conf.in: an upstream block, round-robin, keep-alive
#                    connections), its pid file, logs and temp files in /tmp/imgbench/thumbor-front-PORT.
#                    This script stays in the foreground as their parent: it ends them when it is
#                    ended (TERM, INT) and ends them all, with a non-zero status, when any one exits.
#   processes        one `thumbor --processes N` on PORT (the kernel may hand every keep-alive
#                    connection of a load generator to one process, so req/s swings 2x between runs).
# Env: THUMBOR_VENV, CORPUS, PROCESSES (one per core), THUMBOR_THREADS (ENGINE_THREADPOOL_SIZE,
# one per core), THUMBOR_NGINX_WORKERS (1: one round-robin over all connections).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PORT="${1:-3902}"
MODE="${THUMBOR_MODE:-nginx}"
WORK="${IMGBENCH:-/tmp/imgbench}"
VENV="${THUMBOR_VENV:-$WORK/thumbor-venv}"
export CORPUS="${CORPUS:-$WORK/corpus}"
export THUMBOR_THREADS="${THUMBOR_THREADS:-$(nproc)}"
N="${PROCESSES:-$(nproc)}"
CONF="$HERE/thumbor.conf"
[ -x "$VENV/bin/thumbor" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q thumbor; }

case "$MODE" in
  processes)
    exec "$VENV/bin/thumbor" -c "$CONF" -i 127.0.0.1 -p "$PORT" --processes "$N" -l warning ;;
  nginx) ;;
  *) echo "THUMBOR_MODE must be nginx or processes, not '$MODE'" >&2; exit 2 ;;
esac

command -v nginx >/dev/null || apt-get install -y -q nginx-light >&2
DIR="$WORK/thumbor-front-$PORT"
BASE="${THUMBOR_BACKEND_BASE:-$((PORT * 10))}"
rm -rf "$DIR"; mkdir -p "$DIR/logs" "$DIR/tmp"

CHILDREN=()
stop() {
  trap - EXIT INT TERM
  [ "${#CHILDREN[@]}" -eq 0 ] || kill "${CHILDREN[@]}" 2>/dev/null || true
  wait || true
}
trap stop EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

SERVERS=""
for i in $(seq 1 "$N"); do
  p=$((BASE + i))
  if curl -s -o /dev/null "http://127.0.0.1:$p/"; then echo "port $p is taken (an old thumbor?)" >&2; exit 1; fi
  "$VENV/bin/thumbor" -c "$CONF" -i 127.0.0.1 -p "$p" -l warning > "$DIR/logs/thumbor-$p.log" 2>&1 &
  CHILDREN+=("$!")
  SERVERS+="server 127.0.0.1:$p max_fails=0; "
done
# nginx starts once every process answers, so none is skipped at the start of the first run.
for i in $(seq 1 "$N"); do
  p=$((BASE + i)); pid=${CHILDREN[$((i - 1))]}
  for _ in $(seq 1 1200); do
    kill -0 "$pid" 2>/dev/null || { echo "thumbor on :$p exited:" >&2; cat "$DIR/logs/thumbor-$p.log" >&2; exit 1; }
    curl -sf -o /dev/null "http://127.0.0.1:$p/healthcheck" && break
    sleep 0.1
  done
  curl -sf -o /dev/null "http://127.0.0.1:$p/healthcheck" || { echo "thumbor on :$p does not answer" >&2; exit 1; }
done
sed -e "s#@DIR@#$DIR#g" -e "s#@PORT@#$PORT#g" -e "s#@SERVERS@#$SERVERS#" \
    -e "s#@WORKERS@#${THUMBOR_NGINX_WORKERS:-1}#" "$HERE/nginx.conf.in" > "$DIR/nginx.conf"
nginx -p "$DIR" -e "$DIR/logs/error.log" -c "$DIR/nginx.conf" &
CHILDREN+=("$!")
echo "thumbor: $N processes on :$((BASE + 1))-:$((BASE + N)), ENGINE_THREADPOOL_SIZE=$THUMBOR_THREADS," \
  "behind nginx on :$PORT (pids ${CHILDREN[*]}; config $DIR/nginx.conf)"
# Any child gone (a thumbor crashed, nginx refused its config) ends the rest: no half a peer.
wait -n || true
echo "a thumbor process or nginx exited; stopping the others" >&2
exit 1
