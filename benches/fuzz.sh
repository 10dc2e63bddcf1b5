#!/usr/bin/env bash
# Runs every fuzz target (tests/fuzz, cargo fuzz + libFuzzer) for SECS seconds each, growing
# the corpus in tests/fuzz/corpus/<target>. A crash is left in tests/fuzz/artifacts/<target>:
# fix it, then move the file to tests/fuzz/regressions/<target>/ so `cargo test` replays it.
#
#   benches/fuzz.sh                 # SECS=60 TARGETS="ops signed_url image upload_body"
# Needs a nightly toolchain (rustup) and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SECS="${SECS:-60}"; TARGETS="${TARGETS:-ops signed_url image upload_body}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/imgedge-fuzz-target}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
cd "$ROOT"
for t in $TARGETS; do
  mkdir -p "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t"
  echo "== $t: ${SECS}s"
  cargo +nightly fuzz run --fuzz-dir tests/fuzz "$t" "tests/fuzz/corpus/$t" "tests/fuzz/regressions/$t" -- \
    -max_total_time="$SECS" -rss_limit_mb=2048 -max_len="$( [ "$t" = image ] || [ "$t" = upload_body ] && echo 65536 || echo 2048 )" -print_final_stats=1 2>&1 | grep -E "^(#[0-9]+ +DONE|stat::|==|SUMMARY|Done)" || true
  # Keep the corpus small: only inputs that add coverage.
  cargo +nightly fuzz cmin --fuzz-dir tests/fuzz "$t" "tests/fuzz/corpus/$t" >/dev/null 2>&1 || true
done
if compgen -G "tests/fuzz/artifacts/*/*" >/dev/null; then
  ls tests/fuzz/artifacts/*/*; echo "crashes above: fix them, then move them to tests/fuzz/regressions/<target>/"; exit 1
fi
echo "no crashes"
