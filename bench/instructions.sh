#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: a figure that does
# not move with the machine's noise (bench/README.md keeps a table of it per commit
# that changed the hot path).
#
#   bash bench/instructions.sh                       # builds this tree (release)
#   GW_BIN=/path/to/portcullis bash bench/instructions.sh   # before/after figures
#   TARGETS="public hs256 nginx" bash bench/instructions.sh
#   KEEP=/tmp/cg bash bench/instructions.sh        # keep the callgrind files, to
#                                                  # compare with callgrind_annotate
#   TARGETS="floor nginx" bash bench/instructions.sh  # hyper + tokio alone
#   TARGETS="raw nginx" bash bench/instructions.sh    # httparse + tokio, no hyper
#
# Method (the same as ../shared/bench/instructions.sh): each target runs under
# `valgrind --tool=callgrind` twice, serving 200 and then 2,200 GET requests over 4
# keep-alive connections (Python http.client, one thread each); the difference of the
# two runs' totals divided by 2,000 is the cost of one request, start-up and shutdown
# cancelled out. One worker; upstream: nginx `return 200 "ok"` (not counted). Targets:
# Portcullis on a public route, Portcullis on a route needing a scope with an HS256
# token (verified once, then from the verified-token cache), `full` (that route with
# CORS, a per-subject rate limit and the access log to a file), nginx `proxy_pass`, and
# `floor`: examples/hyper_floor.rs, hyper's server and client connections with nothing
# between them — what hyper and tokio cost before any gateway work (FLOOR_BIN=path to
# use a built one); `raw`: examples/raw_floor.rs, the same relay without hyper
# (httparse and tokio; RAW_BIN=path).
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
TARGETS=${TARGETS:-public hs256 nginx}
BASE_PORT=${BASE_PORT:-48280}
P_UP=$BASE_PORT P_PUB=$((BASE_PORT + 1)) P_HS=$((BASE_PORT + 2)) P_NGINX=$((BASE_PORT + 3))
P_FLOOR=$((BASE_PORT + 4)) P_FULL=$((BASE_PORT + 5)) P_RAW=$((BASE_PORT + 6))
PATH=$PATH:/usr/sbin
for c in valgrind nginx python3 curl; do
  command -v "$c" >/dev/null || { echo "needs $c (apt-get install valgrind nginx-light)" >&2; exit 1; }
done
GW_BIN=${GW_BIN:-}
if [[ -z $GW_BIN ]]; then
  (cd "$root" && cargo build --release --locked -q)
  GW_BIN=$root/target/release/portcullis
fi
FLOOR_BIN=${FLOOR_BIN:-}
if [[ -z $FLOOR_BIN && " $TARGETS " == *" floor "* ]]; then
  (cd "$root" && cargo build --release --locked -q --example hyper_floor)
  FLOOR_BIN=$root/target/release/examples/hyper_floor
fi
RAW_BIN=${RAW_BIN:-}
if [[ -z $RAW_BIN && " $TARGETS " == *" raw "* ]]; then
  (cd "$root" && cargo build --release --locked -q --example raw_floor)
  RAW_BIN=$root/target/release/examples/raw_floor
fi
w=$(mktemp -d /tmp/portcullis-instr.XXXXXX)
cleanup() { [[ -f $w/up.pid ]] && kill "$(cat "$w/up.pid")" 2>/dev/null; rm -rf "$w"; }
trap cleanup EXIT

cat >"$w/up.conf" <<EOF
worker_processes 1; daemon off; error_log /dev/null; pid $w/up.pid;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$P_UP; location / { return 200 "ok"; } } }
EOF
cat >"$w/px.conf" <<EOF
worker_processes 1; daemon off; master_process off; error_log /dev/null; pid $w/px.pid;
events { worker_connections 1024; }
http { access_log off; upstream up { server 127.0.0.1:$P_UP; keepalive 64; }
  server { listen 127.0.0.1:$P_NGINX; location / { proxy_pass http://up;
    proxy_http_version 1.1; proxy_set_header Connection ""; } } }
EOF
secret=$root/tests/fixtures/hs256.secret
gateway_toml() { # port policy extra
  printf '[server]\nlisten = "127.0.0.1:%s"\naccess_log = false\nworker_threads = 1\n%s\n' "$1" "$3"
  printf '[[upstreams]]\nname = "up"\nurl = "http://127.0.0.1:%s"\n' "$P_UP"
  printf '[[routes]]\npath = "/**"\nupstream = "up"\n%s\n' "$2"
}
gateway_toml "$P_PUB" 'auth = "none"' '' >"$w/public.toml"
gateway_toml "$P_HS" 'scopes = ["items:read"]' "[tokens]
issuer = \"bench\"
verify_issuer = false
verify_audience = false
[[tokens.keys]]
kid = \"hs\"
alg = \"HS256\"
secret_file = \"$secret\"" >"$w/hs256.toml"
# The "full stack" of issue 13: hs256 plus CORS, a per-subject rate limit that never
# refuses, and the JSON access log written to a file.
sed -e "s/:$P_HS\"/:$P_FULL\"/" -e "s|^access_log = false|access_log = true\naccess_log_file = \"$w/access.log\"|" \
  "$w/hs256.toml" >"$w/full.toml"
cat >>"$w/full.toml" <<EOF
[cors]
allow_origins = ["https://app.example"]
allow_headers = ["authorization"]
[rate_limits.default]
key = "subject"
rate = "100000000/1s"
EOF
token=$(python3 - "$secret" <<'EOF'
import base64, hashlib, hmac, json, sys, time
key = open(sys.argv[1]).read().strip().encode()
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "alice", "scope": "items:read", "exp": int(time.time()) + 3600}).encode())
print(f"{head}.{body}." + b64(hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()))
EOF
)
cat >"$w/client.py" <<'EOF'
import http.client, sys, threading
port, n = int(sys.argv[1]), int(sys.argv[2])
headers = {"Authorization": "Bearer " + sys.argv[3]} if len(sys.argv) > 3 else {}
def connection():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(n // 4):
        c.request("GET", "/items/42", headers=headers)
        r = c.getresponse(); r.read()
        if r.status != 200: sys.exit(f"status {r.status}")
threads = [threading.Thread(target=connection) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
EOF

nginx -c "$w/up.conf" -p "$w" &
for _ in $(seq 1 50); do curl -s -o /dev/null "127.0.0.1:$P_UP/" && break; sleep 0.1; done

total() { # port requests token command…
  local port=$1 n=$2 tok=$3; shift 3
  valgrind --tool=callgrind --callgrind-out-file="$w/cg.$port.$n" "$@" >"$w/vg.$port.$n.log" 2>&1 &
  local pid=$!
  local auth=()
  [[ -n $tok ]] && auth=(-H "Authorization: Bearer $tok")
  for _ in $(seq 1 200); do
    curl -s -o /dev/null "${auth[@]}" "127.0.0.1:$port/items/42" && break
    sleep 0.2
  done
  python3 "$w/client.py" "$port" "$n" ${tok:+"$tok"}
  kill -INT "$pid"
  wait "$pid" 2>/dev/null || true
  # Less the one-off calibration of governor's clock (the rate limiter's first check):
  # quanta times it against the wall clock, so under callgrind it runs a different
  # number of rounds in each run and would not cancel out.
  local all calib
  all=$(awk '/^summary:/ { print $2 }' "$w/cg.$port.$n")
  calib=$(callgrind_annotate --inclusive=yes --auto=no "$w/cg.$port.$n" 2>/dev/null |
    awk '/quanta::Calibration::calibrate/ { gsub(",", "", $1); if ($1 + 0 > m) m = $1 + 0 } END { print m + 0 }')
  echo $((all - calib))
  if [[ -n ${KEEP:-} ]]; then mkdir -p "$KEEP" && cp "$w/cg.$port.$n" "$KEEP/"; fi
}

for t in $TARGETS; do
  case $t in
    public) port=$P_PUB tok='' cmd=("$GW_BIN" run --config "$w/public.toml") ;;
    hs256) port=$P_HS tok=$token cmd=("$GW_BIN" run --config "$w/hs256.toml") ;;
    full) port=$P_FULL tok=$token cmd=("$GW_BIN" run --config "$w/full.toml") ;;
    nginx) port=$P_NGINX tok='' cmd=(nginx -c "$w/px.conf" -p "$w") ;;
    floor) port=$P_FLOOR tok='' cmd=("$FLOOR_BIN" "127.0.0.1:$P_FLOOR" "127.0.0.1:$P_UP") ;;
    raw) port=$P_RAW tok='' cmd=("$RAW_BIN" "127.0.0.1:$P_RAW" "127.0.0.1:$P_UP") ;;
    *) echo "unknown target $t" >&2; exit 1 ;;
  esac
  small=$(total "$port" 200 "$tok" "${cmd[@]}")
  large=$(total "$port" 2200 "$tok" "${cmd[@]}")
  echo "$t: $(((large - small) / 2000)) instructions/request"
done
