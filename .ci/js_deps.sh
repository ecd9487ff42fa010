#!/usr/bin/env bash
# Installs the JavaScript test dependencies (tests/js/package.json, pinned by its
# package-lock.json) into target/js/node_modules, and links tests/js/node_modules
# to it so the scripts in tests/js resolve their imports. Idempotent: when the
# installed tree was made from the same package.json + package-lock.json, npm is
# not run at all. Called by .ci/run; needs node and npm.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

src=tests/js
dst=target/js
stamp=$dst/node_modules/.portcullis-deps.sha256

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "js_deps: $tool is missing" >&2; exit 1; }
done

# The stamp is the hash of the two files the tree was installed from.
want=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(<"$stamp") == "$want" ]]; then
  echo "js_deps: target/js/node_modules is up to date"
else
  echo "js_deps: npm ci in $dst"
  mkdir -p "$dst"
  cp "$src/package.json" "$src/package-lock.json" "$dst/"
  # No install scripts: none of these packages needs one, and playwright-core
  # downloads no browser (the tests use the system's /usr/bin/chromium).
  npm ci --prefix "$dst" --ignore-scripts --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi

# tests/js/node_modules -> ../../target/js/node_modules (a real directory left by a
# hand-run `npm install` in tests/js is replaced: it is only an install tree).
link=$src/node_modules
if [[ ! -L $link || $(readlink "$link") != ../../target/js/node_modules ]]; then
  rm -rf "$link"
  ln -s ../../target/js/node_modules "$link"
fi
