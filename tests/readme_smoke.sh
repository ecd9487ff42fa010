#!/usr/bin/env bash
# Runs the gateway on the bundled config and replays the README's curl examples,
# checking the answers the README shows. Usage: readme_smoke.sh BINARY CONFIG
set -Eeuo pipefail
bin=$1 config=$2
out=$(mktemp -d)
"$bin" run --config "$config" >"$out/log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$out"' EXIT
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null http://127.0.0.1:9091/healthz 2>/dev/null && break
  sleep 0.1
done

fail() { echo "readme smoke: $*" >&2; cat "$out/log" >&2; exit 1; }
status() { curl -s -o "$out/body" -w '%{http_code}' "$@"; }

[[ $(status 'http://localhost:8080/public/hello?name=world' -H 'X-Auth-Subject: mallory') == 200 ]] || fail "public route"
grep -q '"path": "/public/hello"' "$out/body" || fail "echo shows the path: $(cat "$out/body")"
grep -q '"x-forwarded-for": "127.0.0.1"' "$out/body" || fail "echo shows X-Forwarded-For"
grep -qi 'mallory' "$out/body" && fail "forged identity header reached the upstream"
[[ $(status http://localhost:8080/items/42) == 401 ]] || fail "protected route must be 401"
grep -q '"error":"unauthorized"' "$out/body" || fail "401 body"
[[ $(status -X PATCH http://localhost:8080/items/42) == 405 ]] || fail "405"
[[ $(status http://localhost:8080/nowhere) == 404 ]] || fail "404"
[[ $(status --path-as-is 'http://localhost:8080/public/..%2fitems/42') == 400 ]] || fail "400 on encoded slash"
[[ $(status http://127.0.0.1:9091/readyz) == 200 ]] || fail "readyz"
grep -q '"target":"portcullis::access"' "$out/log" || fail "access log line"
kill -TERM "$pid"
wait "$pid" || fail "exit status after SIGTERM"
trap - EXIT
rm -rf "$out"
echo "readme smoke: all checks passed"
