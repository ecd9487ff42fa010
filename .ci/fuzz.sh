#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ on stable Rust (`cargo fuzz run --sanitizer none`).
# Exits non-zero on the first crash, after printing the input that caused it
# (fuzz/artifacts/<target>/...) and how to replay it.
#
# Two modes:
# - CI (default): reproducible. Each target starts from the committed seeds only, with
#   a fixed seed (FUZZ_SEED, default 1) and a fixed number of runs (FUZZ_RUNS, or the
#   per-target default below), so a fresh clone fuzzes exactly what was fuzzed here and
#   a red CI is always a regression, never a lucky find on another machine. A 60 s cap
#   per target only ever cuts that same sequence short.
# - Exploring (FUZZ_SECONDS=N, 1..600): random seed, N seconds per target, and new inputs
#   kept in fuzz/target/corpus/<target>/ (not committed) between runs. Commit what it
#   finds as a seed plus a regression test (fuzz/README.md).
#
#   FUZZ_TARGETS   space-separated targets to run (default: all of `cargo fuzz list`)
#
# The committed seeds in fuzz/corpus/<target>/ are read, never written.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

log() { printf '\n== %s\n' "$*"; }

seconds=${FUZZ_SECONDS:-}
if [[ -n $seconds ]] && { ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds < 1 || seconds > 600)); }; then
  echo "FUZZ_SECONDS must be 1..600 (got '$seconds')" >&2
  exit 2
fi
seed=${FUZZ_SEED:-1}
# Runs per target in CI mode: about 15-30 s each on one core of the CI machine.
default_runs() {
  case $1 in
    pipeline) echo 30000 ;;
    config) echo 150000 ;;
    *) echo 600000 ;;
  esac
}
if [[ -n ${PORTCULLIS_FUZZ_KNOWN:-} ]]; then
  echo "warning: PORTCULLIS_FUZZ_KNOWN=$PORTCULLIS_FUZZ_KNOWN turns these invariants off" >&2
fi

if ! command -v cargo-fuzz >/dev/null; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# cargo fuzz has no --locked: refuse a lock file that is not up to date first.
cargo metadata --locked --format-version 1 >/dev/null

log "cargo fuzz build (all targets)"
cargo fuzz build --sanitizer none

targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
summary=()
for t in $targets; do
  args=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
  if [[ -n $seconds ]]; then
    log "fuzz $t for ${seconds}s (exploring)"
    scratch="target/corpus/$t"
    args+=(-max_total_time="$seconds")
  else
    runs=${FUZZ_RUNS:-$(default_runs "$t")}
    log "fuzz $t: $runs runs, seed $seed"
    scratch="target/ci-corpus/$t"
    rm -rf "$scratch"
    args+=(-seed="$seed" -runs="$runs" -max_total_time=60)
  fi
  mkdir -p "$scratch" "artifacts/$t"
  [[ -f dict/$t.dict ]] && args+=(-dict="dict/$t.dict")
  out="target/fuzz-$t.log"
  if ! cargo fuzz run --sanitizer none "$t" "$scratch" "corpus/$t" -- "${args[@]}" >"$out" 2>&1; then
    tail -n 40 "$out" >&2
    echo >&2
    grep -E -A1 'panicked at|ERROR: libFuzzer' "$out" | head -n 6 >&2 || true
    echo "fuzz target '$t' crashed (full log: fuzz/$out); the input is:" >&2
    ls -1t "artifacts/$t"/* 2>/dev/null | head -n 1 | sed 's|^|  fuzz/|' >&2
    echo "replay: (cd fuzz && cargo fuzz run --sanitizer none $t <that file>)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out" | tail -n 1)
  summary+=("$(printf '%-16s %10s runs %8s exec/s' "$t" "${runs:-?}" "${rate:-?}")")
done

log "fuzzing: no crash"
printf '%s\n' "${summary[@]}"
