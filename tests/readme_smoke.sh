#!/usr/bin/env bash
# Runs the gateway on the bundled config and replays the README's curl examples,
# checking the answers the README shows. Usage: readme_smoke.sh BINARY CONFIG
#
# The README's commands use 8080 and 9091 (the bundled `listen` / `admin_listen`).
# Here both are replaced by free ports in a copy of the config, so that the suite
# (`bash .ci/run`) runs beside a gateway started from the README (`cargo run
# --release` on 8080): the public listener uses SO_REUSEPORT, and a second gateway on
# the same port would silently share the first one's connections.
set -Eeuo pipefail
bin=$1 config=$2
out=$(mktemp -d) pid=
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$out"' EXIT
fail() {
  echo "readme smoke: $*" >&2
  [[ -f $out/log ]] && cat "$out/log" >&2
  exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port) admin=$(free_port)
[[ $port != "$admin" ]] || admin=$(free_port)
# A copy, so that the store and the key it creates on first start land in $out.
sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$port/g" -e "s/127\.0\.0\.1:9091/127.0.0.1:$admin/g" \
  "$config" >"$out/gateway.toml"
config="$out/gateway.toml"
grep -q "^listen = \"127.0.0.1:$port\"" "$config" && grep -q "^admin_listen = \"127.0.0.1:$admin\"" "$config" ||
  fail "the bundled config no longer listens on 127.0.0.1:8080 (admin 127.0.0.1:9091); update this script and the README"
"$bin" run --config "$config" >"$out/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$admin/healthz" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null ||
    fail "the gateway exited at start (listen 127.0.0.1:$port, admin 127.0.0.1:$admin; \"Address already in use\" means another process took one of them):"
  sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$admin/healthz" 2>/dev/null ||
  fail "the gateway did not answer /healthz on 127.0.0.1:$admin within 10 s:"

status() { curl -s -o "$out/body" -w '%{http_code}' "$@"; }

[[ $(status "http://localhost:$port/public/hello?name=world" -H 'X-Auth-Subject: mallory') == 200 ]] || fail "public route"
grep -q '"path": "/public/hello"' "$out/body" || fail "echo shows the path: $(cat "$out/body")"
grep -q '"x-forwarded-for": "127.0.0.1"' "$out/body" || fail "echo shows X-Forwarded-For"
grep -Eq '"traceparent": "00-[0-9a-f]{32}-[0-9a-f]{16}-01"' "$out/body" || fail "echo shows the traceparent: $(cat "$out/body")"
grep -qi 'mallory' "$out/body" && fail "forged identity header reached the upstream"
[[ $(status http://localhost:$port/items/42) == 401 ]] || fail "protected route must be 401"
grep -q '"error":"unauthorized"' "$out/body" || fail "401 body"
[[ $(status -X PATCH http://localhost:$port/items/42) == 405 ]] || fail "405"
[[ $(status http://localhost:$port/nowhere) == 404 ]] || fail "404"
[[ $(status --path-as-is "http://localhost:$port/public/..%2fitems/42") == 400 ]] || fail "400 on encoded slash"
[[ $(status http://127.0.0.1:$admin/readyz) == 200 ]] || fail "readyz"
[[ $(status http://127.0.0.1:$admin/metrics) == 200 ]] || fail "metrics"
grep -q '^http_server_request_duration_seconds_count{http_route="public",http_request_method="GET",http_response_status_code="200"} 1$' "$out/body" ||
  fail "metrics show the public request: $(grep http_server_request_duration_seconds_count "$out/body")"

# The token service: the README's curl session.
[[ $(status -d grant_type=password -d username=johndoe -d password=secret localhost:$port/token) == 200 ]] || fail "password grant: $(cat "$out/body")"
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" "$out/body"; }
access=$(field access_token) refresh=$(field refresh_token)
[[ -n $access && -n $refresh ]] || fail "token response: $(cat "$out/body")"
[[ $(field scope) == items:read ]] || fail "johndoe's scope"
[[ $(status localhost:$port/items/42 -H "Authorization: Bearer $access" -H 'X-Auth-Subject: mallory') == 200 ]] || fail "token opens /items/42"
grep -q '"x-auth-subject": "johndoe"' "$out/body" || fail "identity injected: $(cat "$out/body")"
grep -qi 'mallory' "$out/body" && fail "forged identity header reached the upstream"
[[ $(status -X POST localhost:$port/items/42 -H "Authorization: Bearer $access") == 403 ]] || fail "403 without items:write"
grep -q '"error":"insufficient_scope"' "$out/body" || fail "403 body"
printf '%s\n' "$access" | "$bin" explain --config "$config" GET /items/42 --token - >"$out/explain" || fail "explain allows: $(cat "$out/explain")"
grep -q 'ALLOW' "$out/explain" || fail "explain says ALLOW: $(cat "$out/explain")"
[[ $(status -d grant_type=refresh_token -d "refresh_token=$refresh" localhost:$port/token) == 200 ]] || fail "refresh"
[[ $(status -d grant_type=refresh_token -d "refresh_token=$refresh" localhost:$port/token) == 400 ]] || fail "refresh token reuse"
[[ $(status -d "token=$access" localhost:$port/revoke) == 200 ]] || fail "revoke"
[[ $(status localhost:$port/items/42 -H "Authorization: Bearer $access") == 401 ]] || fail "revoked token"
curl -si "localhost:$port/items/42" -H "Authorization: $access" >"$out/malformed"
grep -q '^HTTP/1.1 400' "$out/malformed" || fail "a token without its scheme is 400: $(cat "$out/malformed")"
grep -qF 'www-authenticate: Bearer realm="portcullis", error="invalid_request", error_description="the Authorization header has no scheme; expected Bearer <token>"' "$out/malformed" ||
  fail "the 400 names the problem in WWW-Authenticate: $(cat "$out/malformed")"
grep -q '"error":"invalid_request"' "$out/malformed" || fail "400 body: $(cat "$out/malformed")"
# Browser sign-in: the demo app, discovery, and no redirect to an unregistered URI.
[[ $(status localhost:$port/demo/) == 200 ]] || fail "demo app"
grep -q '<meta name="portcullis-client-id" content="demo-spa">' "$out/body" || fail "demo app's client id: $(cat "$out/body")"
[[ $(status localhost:$port/.well-known/openid-configuration) == 200 ]] || fail "discovery"
grep -q '"code_challenge_methods_supported":\["S256"\]' "$out/body" || fail "discovery: S256 only: $(cat "$out/body")"
curl -si "localhost:$port/authorize?client_id=demo-spa&response_type=code&redirect_uri=https://evil.example/" >"$out/authz"
head -1 "$out/authz" | grep -q '^HTTP/1.1 400' || fail "unregistered redirect_uri: $(head -1 "$out/authz")"
grep -qi '^location:' "$out/authz" && fail "an unregistered redirect_uri was redirected to"
# The README's browser step: headless Chromium signs in on the demo app as johndoe
# (Playwright; `.ci/js_deps.sh` installs it), consents, and sees /items/42 answered.
[[ -e "$(dirname "$0")/js/node_modules/playwright-core" ]] || fail "tests/js/node_modules is missing: run bash .ci/js_deps.sh"
node "$(dirname "$0")/js/spa_browser.mjs" "http://localhost:$port" >"$out/spa" 2>&1 ||
  fail "the demo app in Chromium on the bundled config: $(cat "$out/spa")"
[[ $(status localhost:$port/.well-known/jwks.json) == 200 ]] || fail "jwks"
grep -q '"kty":"EC"' "$out/body" || fail "jwks body"
# 5/5s is a burst of 5, then one more per second: 8 attempts at once, 3 refused.
for i in 1 2 3 4 5 6 7 8; do
  curl -s -o /dev/null -w '%{http_code}\n' -d grant_type=password -d username=alice -d password=guess localhost:$port/token >"$out/attempt$i" &
done
wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
limited=$(cat "$out"/attempt* | grep -c 429 || true)
[[ $limited -ge 2 ]] || fail "login rate limit: $(cat "$out"/attempt* | tr '\n' ' ')"
[[ -f "$out/data/demo-es256.pem" && -f "$out/data/portcullis.db" ]] || fail "key and store created next to the config"
for secret in "$access" "$refresh" guess; do
  grep -qF -- "$secret" "$out/log" && fail "a token or password appears in the logs"
done
grep -q '"target":"portcullis::access"' "$out/log" || fail "access log line"
kill -TERM "$pid"
wait "$pid" || fail "exit status after SIGTERM"
pid=

# The README's HTTPS example: examples/tls.toml with a fresh self-signed certificate.
tls_dir=$(dirname "$config")/tls-example
mkdir -p "$tls_dir/examples" "$tls_dir/data"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$tls_dir/data/tls.key" -out "$tls_dir/data/tls.pem" 2>/dev/null || fail "openssl"
tport=$(free_port) tadmin=$(free_port)
sed -e "s/127\.0\.0\.1:8443/127.0.0.1:$tport/" -e "s/127\.0\.0\.1:9443/127.0.0.1:$tadmin/" \
  "$(dirname "$0")/../examples/tls.toml" >"$tls_dir/examples/tls.toml"
"$bin" run --config "$tls_dir/examples/tls.toml" >"$out/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:$tadmin/healthz" 2>/dev/null && break
  sleep 0.1
done
code=$(curl -s -o "$out/body" -w '%{http_code} %{http_version}' --cacert "$tls_dir/data/tls.pem" \
  "https://localhost:$tport/public/hello")
[[ $code == "200 2" ]] || fail "HTTPS example: $code"
grep -q '"x-forwarded-proto": "https"' "$out/body" || fail "echo over TLS shows https: $(cat "$out/body")"
kill -TERM "$pid"
wait "$pid" || fail "exit status after SIGTERM (TLS example)"
trap - EXIT
rm -rf "$out"
echo "readme smoke: all checks passed"
