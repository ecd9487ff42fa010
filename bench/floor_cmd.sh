#!/usr/bin/env bash
# The hyper + tokio floor (examples/hyper_floor.rs) under the shared peer harness, in
# the place of a gateway: it proxies every request as it is and checks nothing (no
# token, no scope, no identity header), so only its speed is meaningful, never its
# answers. It shows what any gateway built on hyper and tokio starts from, against
# nginx and HAProxy in the same run:
#   GATEWAY_CMD="bash $PWD/bench/floor_cmd.sh" TARGETS="nginx haproxy-hs haproxy-rs gateway-hs" \
#     REPEAT=3 PIN_MODES="0 1" INVALID=0 ../shared/bench/run.sh
# FLOOR_BIN=target/release/examples/raw_floor runs the relay without hyper instead.
set -Eeuo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${FLOOR_BIN:-$here/../target/release/examples/hyper_floor}
[[ -x $bin ]] || (cd "$here/.." && cargo build --release --locked -q --example hyper_floor)
up=${GW_UPSTREAM:?}
up=${up#http://}
up=${up%/}
exec "$bin" "127.0.0.1:${GW_PORT:?}" "$up"
