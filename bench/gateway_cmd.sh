#!/usr/bin/env bash
# Runs Portcullis under the shared peer harness (../shared/bench/run.sh):
#   GATEWAY_CMD="bash $PWD/bench/gateway_cmd.sh" GATEWAY_ALGS=hs ../shared/bench/run.sh
# The harness sets GW_PORT, GW_UPSTREAM and GW_THREADS. Token verification is not built
# yet, so the route is public (auth = "none"): the harness's auth checks for the gateway
# targets are expected to fail (it tolerates that for gateway-*), and the load numbers
# measure the proxy path alone.
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${PORTCULLIS_BIN:-$here/../target/release/portcullis}
[[ -x $bin ]] || (cd "$here/.." && cargo build --release --locked -q)
conf=$(mktemp --suffix=.toml)
cat >"$conf" <<TOML
[server]
listen = "127.0.0.1:${GW_PORT:?}"
worker_threads = ${GW_THREADS:-1}
access_log = false

[[upstreams]]
name = "up"
url = "${GW_UPSTREAM:?}"

[[routes]]
path = "/**"
upstream = "up"
auth = "none"
TOML
RUST_LOG=${RUST_LOG:-warn} exec "$bin" run --config "$conf"
