#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 10) from the committed
# seeds, and prints one line per target: executions and the corpus size.
# CI runs it briefly; docs/RELIABILITY.md records a long run:
#   fuzz/run.sh 600
# New inputs go to a scratch corpus under target/, never into corpus/.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-10}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install -q cargo-fuzz --locked
fi
# libFuzzer's sanitizer flags need a nightly compiler; without one, build
# with the stable one and no sanitizer (coverage guidance still works).
if rustup run nightly rustc --version >/dev/null 2>&1; then
  fuzz=(cargo +nightly fuzz)
  sanitizer=()
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
  sanitizer=(-s none)
fi

"${fuzz[@]}" build "${sanitizer[@]}"
status=0
for t in $("${fuzz[@]}" list); do
  scratch="target/scratch-corpus/$t"
  mkdir -p "$scratch"
  log="target/fuzz-$t.log"
  if "${fuzz[@]}" run "${sanitizer[@]}" "$t" "$scratch" "corpus/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1; then
    runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1 | grep -o '[0-9]*')
    printf '%-10s %10s executions in %ss, corpus %s inputs\n' "$t" "$runs" "$secs" "$(ls "$scratch" "corpus/$t" | wc -l)"
  else
    echo "$t: FAILED (artifacts/$t holds the input); the end of its log:"
    tail -40 "$log"
    status=1
  fi
done
exit $status
