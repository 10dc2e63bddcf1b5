#!/usr/bin/env bash
# Shows a CDN purge end to end: imgedge (embedded default) behind Debian's Varnish with
# deploy/varnish/default.vcl, PURGE_WEBHOOK_URL pointing at Varnish. A variant is cached by
# Varnish (MISS, then HIT); a variant purge, then a delete, makes Varnish miss again within
# moments. Installs varnish with apt-get when it is missing; builds imgedge with cargo.
set -euo pipefail
cd "$(dirname "$0")/../.."

die() { echo "demo: $*" >&2; exit 1; }
if ! command -v varnishd >/dev/null && [ ! -x /usr/sbin/varnishd ]; then
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  echo "demo: installing varnish" >&2
  "${sudo[@]}" apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed"
  # The package would start its own service; this demo runs its own varnishd instead.
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${sudo[@]}" chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends varnish >/dev/null 2>&1 \
    || die "could not install varnish"
  "${sudo[@]}" rm -f /usr/sbin/policy-rc.d
fi
varnishd=$(command -v varnishd || echo /usr/sbin/varnishd)
cargo build -q --bin imgedge
bin="${CARGO_TARGET_DIR:-target}/debug/imgedge"
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac

work=$(mktemp -d)
chmod 755 "$work" # varnishd, started as root, runs its child as an unprivileged user
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
app_port=$(free_port)
cache_port=$(free_port)
app="http://127.0.0.1:$app_port"
cache="http://127.0.0.1:$cache_port"

sed "s/\.port = \"8080\"/.port = \"$app_port\"/" deploy/varnish/default.vcl >"$work/default.vcl"
"$varnishd" -F -n "$work/varnish" -a "127.0.0.1:$cache_port" -f "$work/default.vcl" -s malloc,64m \
  >"$work/varnish.log" 2>&1 &
pids+=($!)
(cd "$work" && HOST=127.0.0.1 PORT=$app_port DATA_DIR=data ACCESS_LOG=false \
  PURGE_WEBHOOK_URL="$cache/purge" exec "$bin" >"$work/imgedge.log" 2>&1) &
pids+=($!)
for _ in $(seq 100); do
  curl -fs "$app/healthz" >/dev/null && curl -s -o /dev/null "$cache/" && break
  sleep 0.1
done
curl -fs "$app/healthz" >/dev/null || die "imgedge did not start: $(cat "$work/imgedge.log")"
curl -s -o /dev/null "$cache/" || die "varnish did not start: $(cat "$work/varnish.log")"

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
token=$(curl -fs "$app/v1/auth/register" -H 'content-type: application/json' \
  -d '{"username":"demo","password":"password123"}' | json '["token"]')
id=$(curl -fs "$app/v1/images" -H "authorization: Bearer $token" \
  -H 'content-type: application/octet-stream' --data-binary @tests/fixtures/halves-96x64.jxl | json '["id"]')
url=$(curl -fs "$app/v1/images/$id/url" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{"ops":"w_48,fmt_webp"}' | json '["url"]')

summary() { # headers on stdin → status, Varnish's verdict, imgedge's X-Cache (on a miss)
  tr -d '\r' | awk -v s="$1" '
    /^HTTP/ {status=$2} tolower($1)=="x-varnish-cache:" {v=$2} tolower($1)=="x-cache:" {o=$2}
    END {printf "  %-28s %s  varnish %-4s  imgedge %s\n", s, status, v, (o==""?"-":o)}'
}
fetch() { curl -s -o /dev/null -D - "$cache$url" | summary "$1"; }
now_ms() { date +%s%3N; }
until_miss() { # fetches until Varnish misses, then shows that answer and how long it took
  local start headers; start=$(now_ms)
  for _ in $(seq 100); do
    headers=$(curl -s -o /dev/null -D - "$cache$url")
    grep -qi '^x-varnish-cache: MISS' <<<"$headers" && break
    sleep 0.05
  done
  summary "$1 (+$(( $(now_ms) - start )) ms)" <<<"$headers"
}

echo "GET $url"
fetch "first request"
fetch "second request"
curl -fs -o /dev/null -X DELETE "$app/v1/images/$id/variants" -H "authorization: Bearer $token"
echo "DELETE /v1/images/$id/variants → webhook → Varnish ban"
until_miss "next request"
fetch "again"
curl -fs -o /dev/null -X DELETE "$app/v1/images/$id" -H "authorization: Bearer $token"
echo "DELETE /v1/images/$id → webhook → Varnish ban"
until_miss "next request"
echo "imgedge's webhook calls:"
grep -o '"message":"purge sent[^}]*' "$work/imgedge.log" | sed 's/^/  /' || grep 'purge sent' "$work/imgedge.log" | sed 's/^/  /'
