# Shared by bench/load.sh and bench/tls.sh (sourced, after `root` is set and before
# BASE_PORT is read): parameters, the run directory and the processes to stop, wrk
# and nginx installed, the gateway binary (GW_BIN, else a release build of this
# tree), wrk's one-line report, and the helpers that read a process' CPU time.
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10} WARMUP=${WARMUP:-2} CONNS=${CONNS:-32}
P_UP=$BASE_PORT P_NGINX=$((BASE_PORT + 1)) P_GW=$((BASE_PORT + 2))
run=$(mktemp -d "/tmp/portcullis-${BENCH:-bench}.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
if ((${#missing[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
PATH=$PATH:/usr/sbin
# GW_BIN=path runs that binary instead of building this tree (before/after figures).
GW_BIN=${GW_BIN:-}
if [[ -z $GW_BIN ]]; then
  (cd "$root" && cargo build --release --locked -q)
  GW_BIN=$root/target/release/portcullis
fi
mkdir -p "$run/tmp"

cat >"$run/report.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %.3f %.3f %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA

# The upstream every benchmark proxies to: nginx, one worker, `return 200 "ok"`.
upstream_conf() {
  cat <<EOF
worker_processes 1; daemon off; pid $run/up.pid; error_log $run/up.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 10000000;
  client_body_temp_path $run/tmp; proxy_temp_path $run/tmp; fastcgi_temp_path $run/tmp;
  uwsgi_temp_path $run/tmp; scgi_temp_path $run/tmp;
  server { listen 127.0.0.1:$P_UP; location / { default_type text/plain; return 200 "ok"; } } }
EOF
}

# The upstream and a public route to it (path pattern $1, default "/**"), as the
# gateway.toml tables every Portcullis benchmark config ends with.
public_route_toml() {
  printf '[[upstreams]]\nname = "up"\nurl = "http://127.0.0.1:%s"\n' "$P_UP"
  printf '[[routes]]\npath = "%s"\nupstream = "up"\nauth = "none"\n' "${1:-/**}"
}

# Waits until every port given accepts connections (10 s each at most).
wait_ports() { for p in "$@"; do
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.1; done
done; }
# The worker of the nginx started with $run/NAME.conf.
proxy_pid() { pgrep -f "$run/$1.conf" | xargs -r -n1 pgrep -P | head -1; }
# User + system clock ticks of a process so far.
ticks() { local s; s=$(<"/proc/$1/stat"); s=${s##*) }; set -- $s; echo $((${12} + ${13})); }
tck=$(getconf CLK_TCK)
