#!/usr/bin/env bash
# Load benchmark: the upstream directly, nginx proxy_pass, and Portcullis on a public
# route, measured side by side in ONE run (rounds alternate between targets), with wrk.
#
#   bash bench/load.sh                    # 3 rounds × 10 s per target
#   ROUNDS=5 DURATION=8 bash bench/load.sh
#   GW_ACCESS_LOG=true GW_EXTRA='[rate_limits.default]…' bash bench/load.sh   # features on
#   WORKERS=2 WRK_THREADS=2 bash bench/load.sh   # two workers each (per-core scaling)
#
# Upstream: nginx, 1 worker, `return 200 "ok"`. Proxies: nginx (1 worker, keep-alive
# pool to the upstream) and Portcullis (worker_threads = 1, access log off). Load:
# wrk -t1 -c32. Reported per target: req/s, p50/p99 latency and the CPU time the
# process under test spent per request (user+sys from /proc; the most reproducible
# figure on a shared machine). Medians over rounds; ratios are taken within a round.
# Everything listens on 127.0.0.1; every load run is bounded by -d and `timeout`.
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
DURATION=${DURATION:-10} BASE_PORT=${BASE_PORT:-19080} BENCH=bench
WORKERS=${WORKERS:-1} WRK_THREADS=${WRK_THREADS:-1}
# FLOOR=1 adds examples/hyper_floor.rs (hyper + tokio, nothing between the two sides)
# and examples/raw_floor.rs (the same relay on httparse + tokio, without hyper).
TARGETS="direct nginx portcullis${FLOOR:+ floor raw}"
# shellcheck source=bench/common.sh
source "$here/common.sh"
P_FLOOR=$((BASE_PORT + 3)) P_RAW=$((BASE_PORT + 4))
if [[ -n ${FLOOR:-} ]]; then
  FLOOR_BIN=${FLOOR_BIN:-$root/target/release/examples/hyper_floor}
  [[ -x $FLOOR_BIN ]] || (cd "$root" && cargo build --release --locked -q --example hyper_floor)
  RAW_BIN=${RAW_BIN:-$root/target/release/examples/raw_floor}
  [[ -x $RAW_BIN ]] || (cd "$root" && cargo build --release --locked -q --example raw_floor)
fi

upstream_conf >"$run/upstream.conf"
cat >"$run/proxy.conf" <<EOF
worker_processes $WORKERS; daemon off; pid $run/px.pid; error_log $run/px.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 10000000;
  client_body_temp_path $run/tmp; proxy_temp_path $run/tmp; fastcgi_temp_path $run/tmp;
  uwsgi_temp_path $run/tmp; scgi_temp_path $run/tmp;
  upstream up { server 127.0.0.1:$P_UP; keepalive 64; }
  server { listen 127.0.0.1:$P_NGINX;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
EOF
cat >"$run/gateway.toml" <<EOF
[server]
listen = "127.0.0.1:$P_GW"
worker_threads = $WORKERS
access_log = ${GW_ACCESS_LOG:-false}
access_log_file = "$run/access.log"
$(public_route_toml "/public/**")
${GW_EXTRA:-}
EOF

nginx -c "$run/upstream.conf" -p "$run/tmp" & pids+=($!)
nginx -c "$run/proxy.conf" -p "$run/tmp" & pids+=($!)
RUST_LOG=warn "$GW_BIN" run --config "$run/gateway.toml" >"$run/gw.log" 2>&1 & pids+=($!)
gw_pid=$!
wait_ports $P_UP $P_NGINX $P_GW
declare -A PID PORT
if [[ -n ${FLOOR:-} ]]; then
  "$FLOOR_BIN" "127.0.0.1:$P_FLOOR" "127.0.0.1:$P_UP" & pids+=($!)
  PID[floor]=$! PORT[floor]=$P_FLOOR
  "$RAW_BIN" "127.0.0.1:$P_RAW" "127.0.0.1:$P_UP" & pids+=($!)
  PID[raw]=$! PORT[raw]=$P_RAW
  wait_ports $P_FLOOR $P_RAW
fi
# nginx proxy: every worker's CPU counts (WORKERS > 1).
nginx_workers=$(pgrep -f "$run/proxy.conf" | xargs -r -n1 pgrep -P | tr '\n' ' ')
PID+=([direct]=$(proxy_pid upstream) [nginx]=$nginx_workers [portcullis]=$gw_pid)
PORT+=([direct]=$P_UP [nginx]=$P_NGINX [portcullis]=$P_GW)
curl -fsS "http://127.0.0.1:$P_GW/public/x" >/dev/null || { cat "$run/gw.log"; exit 1; }

all_ticks() { local n=0 p; for p in "$@"; do n=$((n + $(ticks "$p"))); done; echo "$n"; }
printf 'round target req/s p50_ms p99_ms errors cpu_us_per_req\n' >"$run/results.txt"
for round in $(seq "$ROUNDS"); do
  for t in $TARGETS; do
    url="http://127.0.0.1:${PORT[$t]}/public/items/42"
    timeout $((WARMUP + 20)) wrk -t"$WRK_THREADS" -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null
    c0=$(all_ticks ${PID[$t]})
    out=$(timeout $((DURATION + 20)) wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" -s "$run/report.lua" "$url")
    c1=$(all_ticks ${PID[$t]})
    read -r rps p50 p99 errs < <(sed -n 's/^RESULT //p' <<<"$out")
    cpu=$(awk -v d=$((c1 - c0)) -v t="$tck" -v r="$rps" -v s="$DURATION" 'BEGIN{printf "%.1f", d / t / (r * s) * 1e6}')
    printf '%s %s %s %s %s %s %s\n' "$round" "$t" "$rps" "$p50" "$p99" "$errs" "$cpu" | tee -a "$run/results.txt" >&2
  done
done

python3 - "$run/results.txt" <<'EOF'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
by = {}
for r, t, rps, p50, p99, errs, cpu in rows:
    by.setdefault(t, []).append((int(r), float(rps), float(p50), float(p99), int(errs), float(cpu)))
rps_of = {(t, r[0]): r[1] for t, rs in by.items() for r in rs}
print("| target | req/s (median [min–max]) | p50 ms | p99 ms | CPU µs/req | × nginx (per round) | errors |")
print("|---|---:|---:|---:|---:|---:|---:|")
for t in by:
    rs = by[t]
    rps = [r[1] for r in rs]
    ratio = [r[1] / rps_of[("nginx", r[0])] for r in rs]
    print(f"| {t} | {st.median(rps):,.0f} [{min(rps):,.0f}–{max(rps):,.0f}] | {st.median(r[2] for r in rs):.2f} | "
          f"{st.median(r[3] for r in rs):.2f} | {st.median(r[5] for r in rs):.1f} | "
          f"{st.median(ratio):.2f} [{min(ratio):.2f}–{max(ratio):.2f}] | {sum(r[4] for r in rs)} |")
EOF
