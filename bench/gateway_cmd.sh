#!/usr/bin/env bash
# Runs Portcullis under the shared peer harness (../shared/bench/run.sh):
#   GATEWAY_CMD="bash $PWD/bench/gateway_cmd.sh" ../shared/bench/run.sh
# The harness sets GW_PORT, GW_UPSTREAM, GW_THREADS, GW_REQUIRED_SCOPE and the key
# files. Its tokens carry no `iss`, `aud` or `kid`, so issuer and audience checks are
# turned off here (explicitly; they are on by default) and keys are picked by
# algorithm. PUBLIC=1 measures a public route instead (no token checked). FULL=1 adds
# the rest of the issue-13 "full stack": CORS on the route (the requests carry no
# `Origin`, as the harness sends them), a per-subject rate limit too high to refuse,
# and the JSON access log written to a file.
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${PORTCULLIS_BIN:-$here/../target/release/portcullis}
[[ -x $bin ]] || (cd "$here/.." && cargo build --release --locked -q)
conf=$(mktemp --suffix=.toml)
if [[ ${PUBLIC:-0} == 1 ]]; then
  policy='auth = "none"'
  tokens=''
else
  policy="scopes = [\"${GW_REQUIRED_SCOPE:-items:read}\"]"
  tokens="[tokens]
issuer = \"bench\"
verify_issuer = false
verify_audience = false
[[tokens.keys]]
kid = \"hs\"
alg = \"HS256\"
secret_file = \"${GW_JWT_HS256_SECRET_FILE:?}\"
[[tokens.keys]]
kid = \"rs\"
alg = \"RS256\"
public_key = \"${GW_JWT_RS256_PUBKEY_FILE:?}\""
fi
full=''
access_log=false
if [[ ${FULL:-0} == 1 ]]; then
  access_log=true
  full="access_log_file = \"$(mktemp -d)/access.log\"
access_log_rotation = \"never\"
[cors]
allow_origins = [\"https://app.example\"]
allow_headers = [\"authorization\"]
[rate_limits.default]
key = \"subject\"
rate = \"100000000/1s\""
fi
cat >"$conf" <<TOML
[server]
listen = "127.0.0.1:${GW_PORT:?}"
worker_threads = ${GW_THREADS:-1}
access_log = $access_log
$(head -2 <<<"$full")

$tokens

[identity]
claim_headers = { sub = "X-User" }

[[upstreams]]
name = "up"
url = "${GW_UPSTREAM:?}"

[[routes]]
path = "/**"
upstream = "up"
$policy
$(tail -n +3 <<<"$full")
TOML
RUST_LOG=${RUST_LOG:-warn} exec "$bin" run --config "$conf"
