#!/usr/bin/env bash
# Login-flood benchmark: a legitimate user's /token latency (p50/p99) alone and during
# a flood of password attempts for distinct usernames from another address.
#
#   bash bench/login_flood.sh                  # N=60 logins per run, FLOOD=8 processes
#   N=100 FLOOD=16 bash bench/login_flood.sh
#
# Release build, the bundled gateway.toml (default argon2id m=64 MiB, t=3, p=4; the
# default hashing gate: one hash per CPU, 16 waiting; login 5/5s per IP+username,
# login_ip 20/1m per IP), access log off, trusted_proxies = 127.0.0.0/8 so the client
# sets each request's address with X-Forwarded-For. Three runs, one gateway process
# each (fresh counters):
#   alone     — alice logs in N times, one after another;
#   flood     — the same during the flood (bundled policies);
#   gate-only — the same, with login_ip effectively off (login_ip_rate huge): only
#               the hashing gate stands between the flood and alice.
# The flood runs in FLOOD client processes of its own (one connection each). Everything
# on 127.0.0.1, on the same 2 CPUs as the gateway; each run is bounded by N logins.
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
N=${N:-60} FLOOD=${FLOOD:-8} PORT=${PORT:-19180}
run=$(mktemp -d /tmp/portcullis-login-bench.XXXXXX)
gw=""
cleanup() { [[ -n $gw ]] && kill "$gw" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
(cd "$root" && cargo build --release --locked -q)

start() { # $1: name, $2: extra sed for the config
  local dir="$run/$1"
  mkdir -p "$dir"
  sed -e "s|^listen = .*|listen = \"127.0.0.1:$PORT\"|" \
      -e "s|^admin_listen = .*|admin_listen = \"127.0.0.1:$((PORT + 1))\"|" \
      -e 's|^trusted_proxies = .*|trusted_proxies = ["127.0.0.0/8"]|' \
      -e 's|^access_log = .*|access_log = false|' \
      -e "$2" "$root/gateway.toml" >"$dir/gateway.toml"
  RUST_LOG=warn "$root/target/release/portcullis" run --config "$dir/gateway.toml" >"$dir/gw.log" 2>&1 &
  gw=$!
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$((PORT + 1))/readyz" 2>/dev/null && return
    sleep 0.1
  done
  cat "$dir/gw.log"; exit 1
}
stop() { kill "$gw"; wait "$gw" 2>/dev/null || true; gw=""; }

echo "cpus: $(nproc); N=$N FLOOD=$FLOOD"
start alone ''
python3 "$here/login_flood.py" "$PORT" alone "$N" 0
stop
start flood ''
python3 "$here/login_flood.py" "$PORT" flood "$N" "$FLOOD"
stop
start gate-only 's|^rate = "20/1m"|rate = "1000000/1s"|'
python3 "$here/login_flood.py" "$PORT" gate-only "$N" "$FLOOD"
stop
