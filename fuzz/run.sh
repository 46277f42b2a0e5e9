#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (FUZZ_SECONDS each, default 60).
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 enables them on stable.
# A crash leaves its input in fuzz/artifacts/<target>/: copy it to
# fuzz/regressions/<target>/ so that `cargo test --test hostile` replays it
# (`fuzz_regressions_replay` in tests/hostile.rs, decoding it with the targets' own
# decoders, axum_obo_testing::scripted).
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
seconds="${FUZZ_SECONDS:-60}"
for target in authorization_header jwt token_response graph_response; do
    echo "== fuzzing $target for ${seconds}s"
    mkdir -p "corpus/$target"
    cp -n "regressions/$target/"* "corpus/$target/" 2>/dev/null || true
    cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$seconds" -rss_limit_mb=4096
done
