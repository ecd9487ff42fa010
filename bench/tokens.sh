#!/usr/bin/env bash
# Token verification at scale: 10,000 distinct valid RS256 and ES256 tokens sent
# round-robin (a user population, not one cached token), HAProxy `jwt_verify` and
# Portcullis side by side in ONE run (rounds alternate between targets), with wrk.
#
#   bash bench/tokens.sh                      # 3 rounds × 8 s per target
#   TOKENS=20000 ROUNDS=5 bash bench/tokens.sh
#
# Targets, each checking the signature, `exp` and the `items:read` scope, one worker:
#   haproxy-rs / haproxy-es   HAProxy 2.6 jwt_verify (verifies every request)
#   portcullis-rs / -es       Portcullis, verified-token cache on (the default:
#                             10,000 entries per worker, 30 s)
#   nocache-rs / -es          Portcullis with `cache_max_age = "0s"`: every request is
#                             a cache miss, so its CPU per request is the cost of a miss
# Upstream: nginx `return 200`. Load: wrk -t1 -c32 with a Lua script that cycles
# through the tokens. Reported per target: req/s, p50/p99, errors, CPU µs per request
# of the process under test (user+sys from /proc). Medians over rounds.
#
# The cache hit rate of each measured window comes from the gateway's own counter
# (`portcullis_token_cache_lookups_total` on its admin listener, read before and
# after). With TOKENS no larger than the cache (10,000) every token is verified once
# during the warm-up and then served from the cache; TOKENS=20000 shows the other
# end (a working set twice the cache).
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
DURATION=${DURATION:-8} BASE_PORT=${BASE_PORT:-19380} BENCH=tokens
TOKENS=${TOKENS:-10000}
# shellcheck source=bench/common.sh
source "$here/common.sh"
P_HAP_RS=$((BASE_PORT + 3)) P_HAP_ES=$((BASE_PORT + 4)) P_NOCACHE=$((BASE_PORT + 5))

command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null
}
py=$root/target/pyenv/bin/python
[[ -x $py ]] && "$py" -c 'import jwt, cryptography' 2>/dev/null || {
  echo "needs the Python environment of the tests (bash .ci/run makes target/pyenv)" >&2
  exit 1
}

# Keys and tokens.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$run/rs.key" 2>/dev/null
openssl pkey -in "$run/rs.key" -pubout -out "$run/rs.pub"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$run/es.key" 2>/dev/null
openssl pkey -in "$run/es.key" -pubout -out "$run/es.pub"
"$py" - "$run" "$TOKENS" <<'EOF'
import sys, time, jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key
run, n = sys.argv[1], int(sys.argv[2])
exp = int(time.time()) + 3600
for alg, kid in (("RS256", "rs"), ("ES256", "es")):
    # Parsed once: PyJWT would parse (and check) a PEM key again for every token.
    key = load_pem_private_key(open(f"{run}/{kid}.key", "rb").read(), None)
    with open(f"{run}/{kid}.tokens", "w") as f:
        for i in range(n):
            claims = {"sub": f"user{i}", "scope": "items:read", "exp": exp, "iat": exp - 3600}
            f.write(jwt.encode(claims, key, algorithm=alg, headers={"kid": kid}) + "\n")
EOF

cat >"$run/tokens.lua" <<'LUA'
local tokens, i = {}, 0
init = function(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
end
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/items/42", { Authorization = "Bearer " .. tokens[i] })
end
LUA
cat "$run/report.lua" >>"$run/tokens.lua"

upstream_conf >"$run/upstream.conf"
frontend() { # port alg pubkey
  cat <<EOF
frontend jwt_$2
    bind 127.0.0.1:$1
    http-request deny deny_status 401 unless { http_auth_bearer -m found }
    http-request deny deny_status 401 unless { http_auth_bearer,jwt_header_query('\$.alg') -m str $2 }
    http-request deny deny_status 401 unless { http_auth_bearer,jwt_verify("$2","$3") -m int 1 }
    http-request set-var(txn.exp) http_auth_bearer,jwt_payload_query('\$.exp','int')
    http-request set-var(txn.now) date()
    http-request deny deny_status 401 unless { var(txn.exp) -m found }
    http-request deny deny_status 401 if { var(txn.exp),sub(txn.now) -m int le 0 }
    http-request set-var(txn.sub) http_auth_bearer,jwt_payload_query('\$.sub')
    http-request set-var(txn.scope) http_auth_bearer,jwt_payload_query('\$.scope')
    http-request deny deny_status 403 unless { var(txn.scope) -m reg '(^| )items:read( |\$)' }
    http-request set-header X-User %[var(txn.sub)]
    default_backend upstream
EOF
}
{
  cat <<EOF
global
    nbthread 1
    maxconn 4096
    pidfile $run/haproxy.pid
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 75s
    http-reuse always
backend upstream
    server up 127.0.0.1:$P_UP
EOF
  frontend "$P_HAP_RS" RS256 "$run/rs.pub"
  frontend "$P_HAP_ES" ES256 "$run/es.pub"
} >"$run/haproxy.cfg"
gateway_toml() { # port cache_max_age admin_port
  cat <<EOF
[server]
listen = "127.0.0.1:$1"
admin_listen = "127.0.0.1:$3"
worker_threads = 1
access_log = false
[tokens]
issuer = "bench"
verify_issuer = false
verify_audience = false
cache_max_age = "$2"
[[tokens.keys]]
kid = "rs"
alg = "RS256"
public_key = "$run/rs.pub"
[[tokens.keys]]
kid = "es"
alg = "ES256"
public_key = "$run/es.pub"
[[upstreams]]
name = "up"
url = "http://127.0.0.1:$P_UP"
[[routes]]
path = "/items/**"
upstream = "up"
scopes = ["items:read"]
EOF
}
gateway_toml "$P_GW" 30s $((P_GW + 100)) >"$run/gateway.toml"
gateway_toml "$P_NOCACHE" 0s $((P_NOCACHE + 100)) >"$run/nocache.toml"
# hits misses of a gateway's verified-token cache, from its /metrics.
lookups() {
  curl -s "http://127.0.0.1:$(($1 + 100))/metrics" | awk '
    /^portcullis_token_cache_lookups_total\{result="hit"\}/ { h = $2 }
    /^portcullis_token_cache_lookups_total\{result="miss"\}/ { m = $2 }
    END { print h + 0, m + 0 }'
}

nginx -c "$run/upstream.conf" -p "$run/tmp" & pids+=($!)
PATH=$PATH:/usr/sbin haproxy -db -f "$run/haproxy.cfg" >"$run/haproxy.log" 2>&1 & pids+=($!)
hap_pid=$!
RUST_LOG=warn "$GW_BIN" run --config "$run/gateway.toml" >"$run/gw.log" 2>&1 & pids+=($!)
gw_pid=$!
RUST_LOG=warn "$GW_BIN" run --config "$run/nocache.toml" >"$run/nocache.log" 2>&1 & pids+=($!)
nc_pid=$!
wait_ports $P_UP $P_HAP_RS $P_HAP_ES $P_GW $P_NOCACHE
declare -A PID=([haproxy-rs]=$hap_pid [haproxy-es]=$hap_pid [portcullis-rs]=$gw_pid
  [portcullis-es]=$gw_pid [nocache-rs]=$nc_pid [nocache-es]=$nc_pid)
declare -A PORT=([haproxy-rs]=$P_HAP_RS [haproxy-es]=$P_HAP_ES [portcullis-rs]=$P_GW
  [portcullis-es]=$P_GW [nocache-rs]=$P_NOCACHE [nocache-es]=$P_NOCACHE)
# Every target accepts a token of the population before anything is measured.
for t in "${!PORT[@]}"; do
  alg=${t##*-}
  tok=$(head -1 "$run/$alg.tokens")
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" "http://127.0.0.1:${PORT[$t]}/items/42")
  [[ $code == 200 ]] || { echo "$t answered $code"; cat "$run"/*.log; exit 1; }
done

targets="haproxy-rs portcullis-rs nocache-rs haproxy-es portcullis-es nocache-es"
printf 'round target req/s p50_ms p99_ms errors cpu_us_per_req hit_pct\n' >"$run/results.txt"
for round in $(seq "$ROUNDS"); do
  for t in $targets; do
    alg=${t##*-}
    url="http://127.0.0.1:${PORT[$t]}/items/42"
    timeout $((WARMUP + 20)) wrk -t1 -c"$CONNS" -d"${WARMUP}s" -s "$run/tokens.lua" "$url" -- "$run/$alg.tokens" >/dev/null
    [[ $t == haproxy-* ]] || read -r h0 m0 < <(lookups "${PORT[$t]}")
    c0=$(ticks "${PID[$t]}")
    out=$(timeout $((DURATION + 20)) wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$run/tokens.lua" "$url" -- "$run/$alg.tokens")
    c1=$(ticks "${PID[$t]}")
    hit=-
    if [[ $t != haproxy-* ]]; then
      read -r h1 m1 < <(lookups "${PORT[$t]}")
      hit=$(awk -v h=$((h1 - h0)) -v m=$((m1 - m0)) 'BEGIN{printf "%.1f", h + m ? 100 * h / (h + m) : 0}')
    fi
    read -r rps p50 p99 errs < <(sed -n 's/^RESULT //p' <<<"$out")
    cpu=$(awk -v d=$((c1 - c0)) -v t="$tck" -v r="$rps" -v s="$DURATION" 'BEGIN{printf "%.1f", d / t / (r * s) * 1e6}')
    printf '%s %s %s %s %s %s %s %s\n' "$round" "$t" "$rps" "$p50" "$p99" "$errs" "$cpu" "$hit" | tee -a "$run/results.txt" >&2
  done
done

python3 - "$run/results.txt" "$TOKENS" <<'EOF'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]).read().splitlines()[1:]]
by = {}
for r in rows:
    by.setdefault(r[1], []).append(r)
med = lambda t, i: st.median(float(r[i]) for r in by[t])
print(f"\n{sys.argv[2]} distinct tokens, medians of {len(by['haproxy-rs'])} rounds")
print(f"{'target':<15}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'CPU µs/req':>12}{'hit %':>8}")
for t in by:
    hit = '-' if t.startswith('haproxy') else f"{med(t,7):.1f}"
    print(f"{t:<15}{med(t,2):>10.0f}{med(t,3):>9.2f}{med(t,4):>9.2f}{med(t,5):>8.0f}{med(t,6):>12.1f}{hit:>8}")
for alg in ("rs", "es"):
    ratio = [float(a[2]) / float(b[2]) for a, b in zip(by[f"portcullis-{alg}"], by[f"haproxy-{alg}"])]
    miss = [float(a[2]) / float(b[2]) for a, b in zip(by[f"nocache-{alg}"], by[f"haproxy-{alg}"])]
    print(f"{alg.upper()}256: Portcullis / HAProxy req/s per round {['%.2f' % r for r in ratio]};"
          f" every request a miss: {['%.2f' % r for r in miss]}")
EOF
