# Shared by the scripts that drive the real server from outside (tests/browser/run.sh,
# tests/clients/run.sh); sourced, not run.
#
#   server_workdir NAME              a scratch folder in $work, removed on exit (KEEP=1 keeps it),
#                                    with the server stopped and its log shown when the script
#                                    fails (TEST_LOG=1: always)
#   start_server BIN [VAR=value ...] the server on the embedded default in $work, from that
#                                    empty folder (no ./config.toml is read; only the variables
#                                    given apply), on the port it picks itself (IMGEDGE_PORT to
#                                    choose one), read back from its "listening" line (no race
#                                    with another process taking a port chosen here); waits for
#                                    /healthz and sets $server (http://127.0.0.1:PORT) and
#                                    $server_pid

server_workdir() {
  work="$(mktemp -d "${TMPDIR:-/tmp}/imgedge-$1.XXXXXX")"
  server_pid=""
  trap _server_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

_server_cleanup() {
  local status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "${TEST_LOG:-0}" = 1 ] && [ -s "$work/server.log" ]; then
    echo "---- server log ----" >&2
    cat "$work/server.log" >&2 || true
  elif [ "$status" -ne 0 ] && [ -s "$work/server.log" ]; then
    echo "---- server log (last 40 lines) ----" >&2
    tail -n 40 "$work/server.log" >&2 || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then
    echo "run.sh: kept $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$status"
}

start_server() {
  local bin="$1" log="$work/server.log" port="" deadline
  shift
  mkdir -p "$work/data"
  (
    cd "$work"
    unset IMGEDGE_CONFIG DATABASE_URL AWS_S3_BUCKET JWT_SECRET
    exec env HOST=127.0.0.1 PORT="${IMGEDGE_PORT:-0}" DATA_DIR="$work/data" LOG_LEVEL="${LOG_LEVEL:-info}" \
      "$@" "$bin" serve
  ) >"$log" 2>&1 &
  server_pid=$!
  deadline=$((SECONDS + 60))
  while :; do
    port="$(grep -a 'imgedge listening' "$log" 2>/dev/null | grep -ao '127\.0\.0\.1:[0-9]\+' | head -n1 | cut -d: -f2 || true)"
    if [ -n "$port" ] && curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; then
      break
    fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
      echo "run.sh: the server exited before answering /healthz" >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "run.sh: the server did not answer /healthz within 60 s" >&2
      exit 1
    fi
    sleep 0.2
  done
  server="http://127.0.0.1:$port"
}
