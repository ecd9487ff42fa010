#!/usr/bin/env bash
# The TLS listener as a scanner sees it: starts the gateway binary ($1) with a fresh
# self-signed certificate (EC P-256, then RSA 2048) and runs sslscan against it. Fails
# when SSLv2, SSLv3, TLS 1.0 or TLS 1.1 is accepted, when TLS 1.2 or 1.3 is missing,
# or when any accepted cipher is weaker than 128 bits, not AEAD (CBC), or
# RC4/DES/3DES/NULL/EXPORT/anonymous/MD5.
set -Eeuo pipefail
bin=$(realpath "$1")
dir=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
cd "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
fail=0
for kind in ec rsa; do
  if [[ $kind == ec ]]; then
    newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
  else
    newkey=(-newkey rsa:2048)
  fi
  openssl req -x509 "${newkey[@]}" -nodes -keyout key.pem -out cert.pem -days 1 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
  cat > gw.toml <<TOML
[server]
listen = "127.0.0.1:$port"
shutdown_delay = "0s"
[server.tls]
cert = "cert.pem"
key = "key.pem"
[[upstreams]]
name = "demo"
echo = true
[[routes]]
name = "public"
path = "/public/**"
upstream = "demo"
auth = "none"
TOML
  "$bin" run --config gw.toml >gw.log 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -sk -o /dev/null "https://127.0.0.1:$port/public/x" && break
    sleep 0.1
  done
  sslscan --no-colour "127.0.0.1:$port" >scan.txt
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  echo "-- $kind certificate"
  grep -E '^(SSLv|TLSv)[0-9.]+ +(enabled|disabled)' scan.txt
  grep -E '^(Preferred|Accepted)' scan.txt
  for p in SSLv2 SSLv3 TLSv1.0 TLSv1.1; do
    grep -qE "^$p +disabled" scan.txt || { echo "FAIL: $p is not disabled"; fail=1; }
  done
  for p in TLSv1.2 TLSv1.3; do
    grep -qE "^$p +enabled" scan.txt || { echo "FAIL: $p is not enabled"; fail=1; }
  done
  grep -qE '^(Preferred|Accepted)' scan.txt || { echo "FAIL: no cipher accepted"; fail=1; }
  if grep -E '^(Preferred|Accepted)' scan.txt | grep -E 'RC4|DES|NULL|EXP|ADH|AECDH|anon|MD5'; then
    echo "FAIL: weak cipher accepted (above)"; fail=1
  fi
  # TLS 1.2: AEAD suites only (AES-GCM, ChaCha20-Poly1305), never CBC.
  if grep -E '^(Preferred|Accepted) +TLSv1\.2' scan.txt | grep -vE 'GCM|POLY1305'; then
    echo "FAIL: a non-AEAD TLS 1.2 cipher accepted (above)"; fail=1
  fi
  if grep -E '^(Preferred|Accepted)' scan.txt | awk '$3 < 128 { found=1; print } END { exit !found }'; then
    echo "FAIL: a cipher under 128 bits (above)"; fail=1
  fi
done
exit $fail
