#!/usr/bin/env bash
# Memory per idle client connection, HTTP/1.1 and HTTP/2 (h2c prior knowledge),
# Portcullis beside nginx `proxy_pass`: a million idle keep-alive connections is out
# of reach on this machine, so measure the resident memory that N of them add and
# extrapolate (bench/README.md).
#
#   bash bench/idle.sh                  # N=5000 connections per mode
#   N=10000 bash bench/idle.sh
#
# Method: one worker each (Portcullis `worker_threads = 1`, nginx `worker_processes
# 1`), both in front of the same nginx `return 200` upstream. For each target and
# mode, a fresh process; its VmRSS is read, then N connections are opened and each
# made to serve one request (HTTP/1.1: `GET /` with keep-alive, the response read;
# h2: the connection preface, SETTINGS, one HEADERS request, the response read), and
# left open and idle; after a settling second VmRSS is read again. Reported: the
# difference divided by N, in KiB. nginx is measured for HTTP/1.1 only (h2c with prior
# knowledge on a plain listener needs `listen … http2`, which is a different server).
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
BASE_PORT=${BASE_PORT:-19480} BENCH=idle N=${N:-5000}
# shellcheck source=bench/common.sh
source "$here/common.sh"
ulimit -n $((N * 2 + 8192))

upstream_conf >"$run/upstream.conf"
cat >"$run/nginx.conf" <<EOF
worker_processes 1; daemon off; pid $run/nginx.pid; error_log $run/nginx.err warn;
worker_rlimit_nofile $((N * 2 + 1024));
events { worker_connections $((N + 1024)); }
http { access_log off; keepalive_timeout 600s; keepalive_requests 100000;
  client_body_temp_path $run/tmp; proxy_temp_path $run/tmp;
  fastcgi_temp_path $run/tmp; uwsgi_temp_path $run/tmp; scgi_temp_path $run/tmp;
  upstream up { server 127.0.0.1:$P_UP; keepalive 64; }
  server { listen 127.0.0.1:$P_NGINX; location / { proxy_pass http://up;
    proxy_http_version 1.1; proxy_set_header Connection ""; } } }
EOF
cat >"$run/gateway.toml" <<EOF
[server]
listen = "127.0.0.1:$P_GW"
worker_threads = 1
access_log = false
idle_timeout = "10m"
max_connections_per_worker = $((N + 1000))
$(public_route_toml)
EOF

nginx -c "$run/upstream.conf" -p "$run/tmp" & pids+=($!)
wait_ports "$P_UP"

measure() { # target mode
  local pid port
  local launched
  if [[ $1 == nginx ]]; then
    nginx -c "$run/nginx.conf" -p "$run/tmp" &
    launched=$! port=$P_NGINX
    wait_ports "$port"
    pid=$(proxy_pid nginx)
  else
    RUST_LOG=warn "$GW_BIN" run --config "$run/gateway.toml" >"$run/gw.log" 2>&1 &
    launched=$! pid=$! port=$P_GW
    wait_ports "$port"
  fi
  # One request first, so that the upstream pool and lazily built state exist.
  curl -s -o /dev/null "http://127.0.0.1:$port/"
  "$root/target/pyenv/bin/python" "$here/idle_conns.py" "$port" "$N" "$2" "$pid"
  kill "$launched"
  wait "$launched" 2>/dev/null || true
}

printf '%-12s %-6s %8s %14s\n' target mode N "KiB/connection"
for target in portcullis nginx; do
  for mode in ${MODES:-h1 h2}; do
    [[ $target == nginx && $mode == h2 ]] && continue
    printf '%-12s %-6s %8s %14s\n' "$target" "$mode" "$N" "$(measure "$target" "$mode")"
  done
done
