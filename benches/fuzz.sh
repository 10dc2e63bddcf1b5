#!/usr/bin/env bash
# Runs every fuzz target (tests/fuzz, cargo fuzz + libFuzzer) for SECS seconds each, growing
# the corpus in tests/fuzz/corpus/<target>. A crash is left in tests/fuzz/artifacts/<target>:
# fix it, then move the file to tests/fuzz/regressions/<target>/ so `cargo test` replays it.
#
#   benches/fuzz.sh                 # SECS=60 TARGETS="ops signed_url image upload_body gif"
# Needs a nightly toolchain (rustup) and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECS="${SECS:-60}"; TARGETS="${TARGETS:-ops signed_url image upload_body gif}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/imgedge-fuzz-target}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
cd "$ROOT"
for t in $TARGETS; do
  mkdir -p "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t"
  echo "== $t: ${SECS}s"
  # The image targets decode within a 64 MB limit (src/fuzzing.rs): no single allocation may
  # pass twice that, nor the process 512 MB, or libFuzzer reports it as a crash.
  case "$t" in
    image|gif) memory="-rss_limit_mb=512 -malloc_limit_mb=128" len=65536 ;;
    upload_body) memory="-rss_limit_mb=2048" len=65536 ;;
    *) memory="-rss_limit_mb=2048" len=2048 ;;
  esac
  # shellcheck disable=SC2086 # $memory is two options
  cargo +nightly fuzz run --fuzz-dir tests/fuzz "$t" "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t" -- \
    -max_total_time="$SECS" $memory -max_len="$len" -print_final_stats=1 2>&1 | grep -E "^(#[0-9]+ +DONE|stat::|==|SUMMARY|Done)" || true
  # Keep the corpus small: only inputs that add coverage.
  cargo +nightly fuzz cmin --fuzz-dir tests/fuzz "$t" "tests/fuzz/corpus/$t" >/dev/null 2>&1 || true
done
if compgen -G "tests/fuzz/artifacts/*/*" >/dev/null; then
  ls tests/fuzz/artifacts/*/*; echo "crashes above: fix them, then move them to tests/fuzz/regressions/<target>/"; exit 1
fi
echo "no crashes"
