#!/usr/bin/env bash
# Performance figures for the queue worker (printed, never asserted; machines here are noisy).
# Builds release binaries, starts a private PostgreSQL, then measures with cognito-reset-bench:
#   - worker throughput: 50,000 queued jobs, one worker, concurrency 64, rate limit off, against a
#     local fake Cognito that answers at once; and the same workload's SQL ceiling with pgbench
#     running only the claim and completion statements (no Swift, no HTTP), side by side; and
#     the worker's Cognito client alone against the same fake server (no database), which bounds
#     what any worker on this machine can reach (1 / (1/ceiling + 1/http));
#   - enqueue-to-call latency: an idle worker, 1,000 single inserts, p50 / p99;
#   - the worker's peak RSS;
#   - CSV import: a generated file of IMPORT_ROWS lines (default 1,000,000) imported by
#     `cognito-reset import` next to `psql \copy` of the same file into a bare two-column table,
#     medians of 3 runs each, their ratio, and the import's peak RSS; and the floors: the same
#     \copy straight into cognito_reset.jobs, and into a table with only an identity key and the
#     active-user unique index, then with the claim's index, then a plain table with every column
#     and check of the hot partition; and the import without the import reference's foreign key;
#   - the shared rate limit: 3 worker processes on one 20/s bucket (calls per 5 s window, drain
#     time, claim statements per second), the same fleet against a fake Cognito throttling above
#     12/s (how soon it settles, throttles per window), and how soon a ceiling change is followed;
#   - the peer comparison (scripts/lib/peer_bench.sh): the worker, pgqueuer 1.6.0 and a minimal
#     pgbench claim + complete on one workload, per job: jobs/s, PostgreSQL CPU, WAL, transactions;
#   scripts/bench.sh [--jobs N] [--concurrency N] [--latency-samples N] [--section all|worker|fleet]
#                    [--fleet-jobs N]
#   IMPORT_ROWS=N scripts/bench.sh   (IMPORT_ONLY=1 skips the worker and peer figures)
#   - growth (scripts/lib/growth_bench.sh): claim and enqueue latency p50/p99 with an empty history
#     and with 10,000,000 finished jobs, the time to prune 1,000,000 of them, the size left;
#   PEER_ONLY=1 [PEER_JOBS=N] scripts/bench.sh   (the peer comparison alone)
#   GROWTH_ONLY=1 [GROWTH_HISTORY=N] scripts/bench.sh   (the growth figures alone)
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
. scripts/lib/peer_bench.sh
. scripts/lib/growth_bench.sh
if [ "${PEER_ONLY:-0}" = 1 ]; then
    peer_bench
    exit 0
fi
if [ "${GROWTH_ONLY:-0}" = 1 ]; then
    growth_bench
    exit 0
fi
if [ "${IMPORT_ONLY:-0}" != 1 ]; then
    "$bin_dir/cognito-reset-bench" --worker "$bin_dir/cognito-reset" "$@"
fi

# --- CSV import ------------------------------------------------------------------------------
rows=${IMPORT_ROWS:-1000000}
csv="$run_dir/users.csv"
python3 - "$rows" "$csv" <<'PY'
import sys
rows, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("username,user_pool_id\n")
    f.writelines(f"user{i}@example.com,eu-west-1_Bench1\n" for i in range(rows))
PY
log "CSV import: $rows lines, $(du -h "$csv" | cut -f1)"
admin_url=$DATABASE_URL
psql -q "$admin_url" -c "CREATE DATABASE bench_import" >/dev/null
import_url=${admin_url%/*}/bench_import
DATABASE_URL=$import_url "$bin_dir/cognito-reset" migrate >/dev/null
psql -q "$import_url" -c "CREATE TABLE bare (username text, user_pool_id text)" >/dev/null

# seconds_of CMD...: wall time of one run, in seconds. A checkpoint first, so that no load pays
# for writing out the pages of the one before it (a million rows dirty more than shared_buffers,
# and the checkpoints they start would land on whichever load came next).
seconds_of() {
    local start end
    psql -q "$import_url" -c CHECKPOINT >/dev/null
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    python3 -c "print(f'{$end - $start:.3f}')"
}
# copy_seconds TABLE: seconds_of a psql \copy of the file into TABLE's two columns.
copy_seconds() { seconds_of psql -q "$import_url" -c "\\copy $1 (username, user_pool_id) FROM '$csv' WITH (FORMAT csv, HEADER true)"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# peak_rss CMD...: runs it, prints its peak RSS in MiB (VmHWM, sampled until it exits).
peak_rss() {
    "$@" >/dev/null &
    local pid=$! peak=0 now
    while kill -0 "$pid" 2>/dev/null; do
        now=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ -n "$now" ] && [ "$now" -gt "$peak" ] && peak=$now
        sleep 0.05
    done
    wait "$pid"
    python3 -c "print(f'{$peak / 1024:.1f}')"
}

# Floors: what PostgreSQL alone takes to put the same file where jobs must live, with no Swift,
# no validation, no staging and no dedupe. First straight into cognito_reset.jobs (its indexes,
# checks and trigger are the queue's), then into the least any job table needs: an identity key
# and the unique index on the active user that the dedupe rests on.
psql -q "$import_url" -c "CREATE TABLE minimal (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, username text, user_pool_id text, state text NOT NULL DEFAULT 'pending')" \
    -c "CREATE UNIQUE INDEX ON minimal (user_pool_id, username) WHERE state IN ('pending', 'running', 'retrying')" >/dev/null
# The same with the unique index comparing bytes (COLLATE "C"): initdb's C.UTF-8 collation
# compares text through the C library, which the index's million comparisons pay for.
psql -q -v ON_ERROR_STOP=1 "$import_url" -c "CREATE TABLE minimal_c (LIKE minimal INCLUDING ALL EXCLUDING INDEXES)" \
    -c "ALTER TABLE minimal_c ADD PRIMARY KEY (id)" \
    -c "CREATE UNIQUE INDEX ON minimal_c (user_pool_id COLLATE \"C\", username COLLATE \"C\") WHERE state IN ('pending', 'running', 'retrying')" >/dev/null
# Two steps up from that floor, to show where the rest of the \copy into jobs goes: the same
# table with the claim's index (claims take jobs in pool, priority and run_at order), then a
# plain table with every column, default and check of the hot partition and the three indexes
# the claim and the dedupe need (what is left out: the partitioned parent's routing, the wake-up
# timer's run_at index, the idempotency-key trigger and the fill factor).
psql -q -v ON_ERROR_STOP=1 "$import_url" \
    -c "CREATE TABLE minimal_claim (LIKE minimal INCLUDING ALL EXCLUDING INDEXES, priority smallint NOT NULL DEFAULT 100, run_at timestamptz NOT NULL DEFAULT now(), import_id bigint)" \
    -c "ALTER TABLE minimal_claim ADD PRIMARY KEY (id)" \
    -c "CREATE UNIQUE INDEX ON minimal_claim (user_pool_id, username) WHERE state IN ('pending', 'running', 'retrying')" \
    -c "CREATE INDEX ON minimal_claim (user_pool_id, priority, run_at, id) WHERE import_id IS NULL" \
    -c "CREATE TABLE plain_jobs (LIKE cognito_reset.jobs_active INCLUDING DEFAULTS INCLUDING CONSTRAINTS)" \
    -c "ALTER TABLE plain_jobs ALTER id ADD GENERATED ALWAYS AS IDENTITY, ADD PRIMARY KEY (id)" \
    -c "CREATE UNIQUE INDEX ON plain_jobs (user_pool_id, username)" \
    -c "CREATE INDEX ON plain_jobs (user_pool_id, priority, run_at, id) WHERE import_id IS NULL" >/dev/null
# The import's floor: its insert has PostgreSQL check the import reference (the foreign key from
# jobs_active.import_id to imports) once per line, one query each, where \copy's rows leave the
# reference empty and skip it. The same import with that key dropped for the run shows its share.
without_import_key() {
    psql -q -v ON_ERROR_STOP=1 "$import_url" -c "ALTER TABLE cognito_reset.jobs_active DROP CONSTRAINT jobs_import_id_fkey" >/dev/null
    seconds_of env DATABASE_URL="$import_url" "$bin_dir/cognito-reset" import "$csv"
    # Back as it was (NOT VALID: the rows just imported reference their own import).
    psql -q -v ON_ERROR_STOP=1 "$import_url" -c "ALTER TABLE cognito_reset.jobs_active ADD CONSTRAINT jobs_import_id_fkey
        FOREIGN KEY (import_id) REFERENCES cognito_reset.imports (id) NOT VALID" >/dev/null
}
# The eight loads take turns in each round, so a noisy minute weighs on all of them alike.
# Autovacuum is off for these rounds: after each load it would vacuum and analyse a million new
# rows on one of the two cores while the next load runs. It is back on for what follows.
psql -q "$admin_url" -c "ALTER SYSTEM SET autovacuum = off" -c "SELECT pg_reload_conf()" >/dev/null
copy_times=() import_times=() jobs_copy_times=() minimal_copy_times=() minimal_c_copy_times=() unkeyed_import_times=()
claim_copy_times=() plain_copy_times=()
empty_tables() {
    psql -q "$import_url" -c "TRUNCATE bare" -c "TRUNCATE minimal" -c "TRUNCATE minimal_c" -c "TRUNCATE minimal_claim" -c "TRUNCATE plain_jobs" \
        -c "TRUNCATE cognito_reset.jobs, cognito_reset.imports CASCADE" >/dev/null 2>&1
}
for _ in 1 2 3; do
    empty_tables
    copy_times+=("$(copy_seconds bare)")
    jobs_copy_times+=("$(copy_seconds cognito_reset.jobs)")
    empty_tables
    import_times+=("$(seconds_of env DATABASE_URL="$import_url" "$bin_dir/cognito-reset" import "$csv")")
    minimal_copy_times+=("$(copy_seconds minimal)")
    minimal_c_copy_times+=("$(copy_seconds minimal_c)")
    claim_copy_times+=("$(copy_seconds minimal_claim)")
    plain_copy_times+=("$(copy_seconds plain_jobs)")
    empty_tables
    unkeyed_import_times+=("$(without_import_key)")
done
psql -q "$admin_url" -c "ALTER SYSTEM RESET autovacuum" -c "SELECT pg_reload_conf()" >/dev/null
psql -q "$import_url" -c "TRUNCATE cognito_reset.jobs, cognito_reset.imports CASCADE" >/dev/null 2>&1
rss=$(peak_rss env DATABASE_URL="$import_url" "$bin_dir/cognito-reset" import "$csv")
jobs=$(psql -qtA "$import_url" -c "SELECT count(*) FROM cognito_reset.jobs")
copy_median=$(median "${copy_times[@]}")
import_median=$(median "${import_times[@]}")
jobs_copy_median=$(median "${jobs_copy_times[@]}")
minimal_copy_median=$(median "${minimal_copy_times[@]}")
minimal_c_copy_median=$(median "${minimal_c_copy_times[@]}")
unkeyed_import_median=$(median "${unkeyed_import_times[@]}")
claim_copy_median=$(median "${claim_copy_times[@]}")
plain_copy_median=$(median "${plain_copy_times[@]}")
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
echo "CSV import of $rows lines (medians of 3; jobs created by the last import: $jobs)"
echo "  psql \\copy into a bare two-column table:  ${copy_median} s   (runs: ${copy_times[*]})"
echo "  psql \\copy into cognito_reset.jobs:       ${jobs_copy_median} s   (runs: ${jobs_copy_times[*]})"
echo "  cognito-reset import:                    ${import_median} s   (runs: ${import_times[*]})"
echo "  \\copy into jobs / bare \\copy:             $(ratio "$jobs_copy_median" "$copy_median") x  (target: at most 10)"
echo "    bound: \\copy into a table with only an identity key and the active-user unique index"
echo "    (the least a job table with one-active-job-per-user needs): ${minimal_copy_median} s = $(ratio "$minimal_copy_median" "$copy_median") x bare   (runs: ${minimal_copy_times[*]})"
echo "    the same with that index comparing bytes (COLLATE \"C\"):   ${minimal_c_copy_median} s = $(ratio "$minimal_c_copy_median" "$copy_median") x bare   (runs: ${minimal_c_copy_times[*]})"
echo "    + the claim's index (pool, priority, run_at, id):          ${claim_copy_median} s = $(ratio "$claim_copy_median" "$copy_median") x bare   (runs: ${claim_copy_times[*]})"
echo "    + every column, default and check of the hot partition (a plain table with the key, the"
echo "      active-user and the claim indexes; no partitions, no run_at index, no trigger):"
echo "                                                             ${plain_copy_median} s = $(ratio "$plain_copy_median" "$copy_median") x bare   (runs: ${plain_copy_times[*]})"
echo "  import / \\copy into jobs:                 $(ratio "$import_median" "$jobs_copy_median") x  (target: at most 1.5)"
echo "    bound: the same import without the import reference's foreign key, which PostgreSQL checks"
echo "    with one query per line: ${unkeyed_import_median} s = $(ratio "$unkeyed_import_median" "$jobs_copy_median") x \\copy into jobs   (runs: ${unkeyed_import_times[*]})"
echo "  import / bare \\copy:                      $(ratio "$import_median" "$copy_median") x"
echo "  import peak RSS:                        ${rss} MiB  (target: under 100 MiB)"

if [ "${IMPORT_ONLY:-0}" != 1 ]; then
    peer_bench
    growth_bench
fi
