#!/usr/bin/env bash
# Performance figures for the queue worker (printed, never asserted; machines here are noisy).
# Builds release binaries, starts a private PostgreSQL, then measures with cognito-reset-bench:
#   - worker throughput: 50,000 queued jobs, one worker, concurrency 64, rate limit off, against a
#     local fake Cognito that answers at once; and the same workload's SQL ceiling with pgbench
#     running only the claim and completion statements (no Swift, no HTTP), side by side;
#   - enqueue-to-call latency: an idle worker, 1,000 single inserts, p50 / p99;
#   - the worker's peak RSS.
#   scripts/bench.sh [--jobs N] [--concurrency N] [--latency-samples N]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

ensure_system_packages

make_run_dir cognito-reset-bench

log "building release binaries (the first release build takes several minutes)"
swift build -c release --product cognito-reset >"$run_dir/build.log" 2>&1 || { cat "$run_dir/build.log" >&2; die "build failed"; }
swift build -c release --product cognito-reset-bench >>"$run_dir/build.log" 2>&1 || { cat "$run_dir/build.log" >&2; die "build failed"; }
bin_dir=$(swift build -c release --show-bin-path)

pg_start "$run_dir/pg"
log "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
"$bin_dir/cognito-reset-bench" --worker "$bin_dir/cognito-reset" "$@"
