#!/usr/bin/env bash
# TLS benchmark: nginx and Portcullis terminating TLS in front of the same plain
# upstream, measured side by side in ONE run (rounds alternate between targets):
#
#   keepalive    wrk -t1 -c32 over HTTPS, requests on established TLS connections:
#                the proxied-request cost over TLS
#   handshake    wrk -t1 -c32 with "Connection: close": every request is a new TCP
#                connection and a full TLS handshake (wrk does not resume sessions)
#
#   bash bench/tls.sh                       # 3 rounds × 8 s per target and mode
#   ROUNDS=5 DURATION=10 bash bench/tls.sh
#
# Both use the same ECDSA P-256 certificate, TLS 1.3 (what wrk's OpenSSL picks), one
# worker (nginx worker_processes 1, Portcullis worker_threads = 1), HTTP/1.1 to a
# keep-alive upstream (nginx `return 200 "ok"`). Reported per target and mode: req/s,
# p50/p99 latency and the CPU time the process under test spent per request
# (user+sys from /proc). Medians over rounds; ratios are taken within a round.
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
DURATION=${DURATION:-8} BASE_PORT=${BASE_PORT:-19180} BENCH=tls-bench
# shellcheck source=bench/common.sh
source "$here/common.sh"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout "$run/key.pem" -out "$run/cert.pem" -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
temp="client_body_temp_path $run/tmp; proxy_temp_path $run/tmp; fastcgi_temp_path $run/tmp; uwsgi_temp_path $run/tmp; scgi_temp_path $run/tmp;"
upstream_conf >"$run/upstream.conf"
cat >"$run/proxy.conf" <<CONF
worker_processes 1; daemon off; pid $run/px.pid; error_log $run/px.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 10000000; $temp
  upstream up { server 127.0.0.1:$P_UP; keepalive 64; }
  server { listen 127.0.0.1:$P_NGINX ssl;
    ssl_certificate $run/cert.pem; ssl_certificate_key $run/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
cat >"$run/gateway.toml" <<CONF
[server]
listen = "127.0.0.1:$P_GW"
worker_threads = 1
access_log = false
[server.tls]
cert = "$run/cert.pem"
key = "$run/key.pem"
$(public_route_toml "/public/**")
CONF

nginx -c "$run/upstream.conf" -p "$run/tmp" & pids+=($!)
nginx -c "$run/proxy.conf" -p "$run/tmp" & pids+=($!)
RUST_LOG=warn "$GW_BIN" run --config "$run/gateway.toml" >"$run/gw.log" 2>&1 & pids+=($!)
gw_pid=$!
wait_ports $P_UP $P_NGINX $P_GW
declare -A PID=([nginx]=$(proxy_pid proxy) [portcullis]=$gw_pid)
declare -A PORT=([nginx]=$P_NGINX [portcullis]=$P_GW)
for t in nginx portcullis; do
  curl -fsS --cacert "$run/cert.pem" "https://localhost:${PORT[$t]}/public/x" >/dev/null \
    || { cat "$run/gw.log" "$run/px.err"; exit 1; }
done

printf 'round mode target req/s p50_ms p99_ms errors cpu_us_per_req\n' >"$run/results.txt"
for round in $(seq "$ROUNDS"); do
  for mode in keepalive handshake; do
    hdr=()
    [[ $mode == handshake ]] && hdr=(-H "Connection: close")
    for t in nginx portcullis; do
      url="https://127.0.0.1:${PORT[$t]}/public/items/42"
      timeout $((WARMUP + 20)) wrk -t1 -c"$CONNS" -d"${WARMUP}s" "${hdr[@]}" "$url" >/dev/null
      c0=$(ticks "${PID[$t]}")
      out=$(timeout $((DURATION + 20)) wrk -t1 -c"$CONNS" -d"${DURATION}s" "${hdr[@]}" -s "$run/report.lua" "$url")
      c1=$(ticks "${PID[$t]}")
      read -r rps p50 p99 errs < <(sed -n 's/^RESULT //p' <<<"$out")
      cpu=$(awk -v d=$((c1 - c0)) -v t="$tck" -v r="$rps" -v s="$DURATION" 'BEGIN{printf "%.1f", d / t / (r * s) * 1e6}')
      printf '%s %s %s %s %s %s %s %s\n' "$round" "$mode" "$t" "$rps" "$p50" "$p99" "$errs" "$cpu" | tee -a "$run/results.txt" >&2
    done
  done
done

python3 - "$run/results.txt" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
by = {}
for r, mode, t, rps, p50, p99, errs, cpu in rows:
    by.setdefault((mode, t), []).append((int(r), float(rps), float(p50), float(p99), int(errs), float(cpu)))
rps_of = {(m, t, r[0]): r[1] for (m, t), rs in by.items() for r in rs}
print("| mode | target | req/s (median [min–max]) | p50 ms | p99 ms | CPU µs/req | × nginx (per round) | errors |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for mode in ["keepalive", "handshake"]:
    for t in ["nginx", "portcullis"]:
        rs = by[(mode, t)]
        rps = [r[1] for r in rs]
        ratio = [r[1] / rps_of[(mode, "nginx", r[0])] for r in rs]
        print(f"| {mode} | {t} | {st.median(rps):,.0f} [{min(rps):,.0f}–{max(rps):,.0f}] | "
              f"{st.median(r[2] for r in rs):.2f} | {st.median(r[3] for r in rs):.2f} | "
              f"{st.median(r[5] for r in rs):.1f} | {st.median(ratio):.2f} [{min(ratio):.2f}–{max(ratio):.2f}] | "
              f"{sum(r[4] for r in rs)} |")
PY
