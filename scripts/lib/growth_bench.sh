# The growth figures of scripts/bench.sh (sourced; needs common.sh, a running pg_start server,
# $bin_dir with release binaries and $run_dir): do the queue's costs stay flat as history grows?
#   - claim + record and enqueue latency, p50 / p99 (pgbench, per transaction), with an empty
#     history and with GROWTH_HISTORY (default 10,000,000) finished jobs and their audit rows;
#   - the time `prune_history` takes to remove one day of 1,000,000 finished jobs (with their
#     audit), and the tables' size afterwards (after VACUUM, as autovacuum would leave them)
#     against the same rows loaded afresh.
# Partitions are daily by finished_at and a bench cannot wait for days, so the history is placed
# in the coming days (created and finished there); the queue's active jobs are created after it.

growth_history=${GROWTH_HISTORY:-10000000}
growth_pending=200000
growth_per_day=1000000

# growth_db NAME HISTORY: a migrated database with $growth_pending runnable jobs and HISTORY
# finished jobs (one audit row each), $growth_per_day per day from today on.
growth_db() {
    local db=$1 history=$2 url=${DATABASE_URL%/*}/$1 days
    days=$(( (history + growth_per_day - 1) / growth_per_day ))
    psql -q "$DATABASE_URL" -c "CREATE DATABASE $db" >/dev/null
    DATABASE_URL=$url "$bin_dir/cognito-reset" migrate >/dev/null
    psql -q -v ON_ERROR_STOP=1 "$url" >/dev/null <<SQL
SELECT cognito_reset.ensure_history_partitions($days + 1);
INSERT INTO cognito_reset.jobs (user_pool_id, username, state, attempt, created_at, started_at, finished_at, cognito_request_id)
SELECT 'eu-west-1_Hist', 'h' || g, 'succeeded', 1, f - interval '1 minute', f - interval '1 second', f, 'r' || g
FROM (SELECT g, date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
             + ((g - 1) / $growth_per_day) * interval '1 day' + ((g - 1) % $growth_per_day) * interval '80 ms' AS f
      FROM generate_series(1, $history) g) s;
INSERT INTO cognito_reset.attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, request_id, latency_ms)
SELECT id, 1, 'w', started_at, finished_at, 'succeeded', cognito_request_id, 30 FROM cognito_reset.jobs_finished;
-- prune_history reads a day's oldest creation time once the day is over; these days are not
-- over yet (they are in the future), so the bench writes down what it generated.
UPDATE cognito_reset.history_partitions SET min_created_at = lower_bound - interval '1 minute'
WHERE parent = 'jobs_finished' AND lower_bound IS NOT NULL;
-- The queue's live jobs, created after that history.
INSERT INTO cognito_reset.jobs (user_pool_id, username, created_at, run_at)
SELECT 'eu-west-1_Live', 'l' || g, now() + interval '1 day' * ($days + 1), now() FROM generate_series(1, $growth_pending) g;
VACUUM ANALYZE;
SQL
    echo "$url"
}

# latency URL SCRIPT TRANSACTIONS: "p50 p99" in ms of SCRIPT's transactions (2 clients).
latency() {
    local url=$1 script=$2 count=$3 dir=$run_dir/pgbench-log
    rm -rf "$dir"; mkdir -p "$dir"
    (cd "$dir" && "$(pg_bindir)/pgbench" -n -c 2 -j 2 -t "$count" -l -f "$script" "$url" >/dev/null)
    cat "$dir"/pgbench_log.* | awk '{print $3 / 1000}' | sort -g | awk '{a[NR]=$1} END {printf "%.2f %.2f\n", a[int(NR*0.5)], a[int(NR*0.99)]}'
}

# median_pair "P50 P99"...: the median p50 and the median p99 of the runs given.
median_pair() {
    local runs=("$@")
    printf '%s\n' "${runs[@]}" | awk '{print $1}' | sort -g | awk '{a[NR]=$1} END {printf "%s ", a[int((NR+1)/2)]}'
    printf '%s\n' "${runs[@]}" | awk '{print $2}' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

growth_bench() {
    local empty full claim_sql enqueue_sql e_claim f_claim e_enq f_enq prune_s sizes
    log "growth: $growth_history finished jobs in history against none (this takes a few minutes)"
    claim_sql=$run_dir/claim_record.sql
    cat >"$claim_sql" <<'SQL'
SELECT quote_literal(coalesce(array_agg(id), '{}')::text) AS ids FROM cognito_reset.claim_paced('bench' || :client_id, 16, 30, NULL, 0, 0.5) WHERE id IS NOT NULL \gset
WITH done AS (
    UPDATE cognito_reset.jobs AS j SET state = 'succeeded', finished_at = now(), locked_by = NULL, lease_expires_at = NULL
    WHERE j.id = ANY(:ids::bigint[]) AND j.state = 'running' AND j.locked_by = 'bench' || :client_id
    RETURNING j.id, j.attempt, j.started_at)
INSERT INTO cognito_reset.attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, latency_ms)
SELECT id, attempt, 'bench', started_at, greatest(now(), started_at), 'succeeded', 1 FROM done;
SQL
    enqueue_sql=$run_dir/enqueue.sql
    cat >"$enqueue_sql" <<'SQL'
\set u random(1, 1000000000)
SELECT cognito_reset.enqueue_reset('eu-west-1_Enq', 'e' || :client_id || '-' || :u);
SQL
    empty=$(growth_db growth_empty 0)
    full=$(growth_db growth_full "$growth_history")
    # Three runs per cell, empty and full taken in turns (so the machine's drift falls on both),
    # and each figure the median of its three: one run's p99 is a few dozen transactions.
    local i e_claims=() f_claims=() e_enqs=() f_enqs=()
    for i in 1 2 3; do
        e_claims+=("$(latency "$empty" "$claim_sql" 1500)"); f_claims+=("$(latency "$full" "$claim_sql" 1500)")
        e_enqs+=("$(latency "$empty" "$enqueue_sql" 4000)"); f_enqs+=("$(latency "$full" "$enqueue_sql" 4000)")
    done
    e_claim=$(median_pair "${e_claims[@]}"); f_claim=$(median_pair "${f_claims[@]}")
    e_enq=$(median_pair "${e_enqs[@]}"); f_enq=$(median_pair "${f_enqs[@]}")

    # Prune the first day (1,000,000 jobs and their audit). The bench's own enqueued jobs were
    # created now, before that history's days: they would (rightly) keep its audit, so they go first.
    psql -q "$full" -c "DELETE FROM cognito_reset.jobs_active WHERE user_pool_id = 'eu-west-1_Enq'" >/dev/null
    prune_s=$(psql -qtA "$full" <<'SQL'
\timing on
SELECT * FROM cognito_reset.prune_history(date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '1 day');
SQL
)
    psql -q "$full" -c "VACUUM" >/dev/null
    sizes=$(psql -qtA "$full" <<'SQL'
CREATE TEMP TABLE fresh_jobs AS SELECT * FROM cognito_reset.jobs;
CREATE INDEX ON fresh_jobs (id);
CREATE TEMP TABLE fresh_attempts AS SELECT * FROM cognito_reset.attempts;
CREATE INDEX ON fresh_attempts (job_id, attempt);
SELECT (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'cognito_reset' AND c.relkind = 'r' AND (c.relname LIKE 'jobs%' OR c.relname LIKE 'attempts%')),
       pg_total_relation_size('fresh_jobs') + pg_total_relation_size('fresh_attempts');
SQL
)
    local pruned took tables live
    pruned=$(printf '%s\n' "$prune_s" | head -1)
    took=$(printf '%s\n' "$prune_s" | awk '/^Time:/ {print $2}')
    tables=$(printf '%s\n' "$sizes" | tail -1 | cut -d'|' -f1)
    live=$(printf '%s\n' "$sizes" | tail -1 | cut -d'|' -f2)
    echo "Growth: $growth_pending runnable jobs; history empty or $growth_history finished jobs (2 pgbench clients; ms; medians of 3 runs)"
    printf '  %-44s %14s %14s %8s\n' "" "empty p50/p99" "full p50/p99" "p99 ratio"
    printf '  %-44s %14s %14s %8s\n' "claim 16 + record them (claim_paced)" "$(echo "$e_claim" | tr ' ' /)" "$(echo "$f_claim" | tr ' ' /)" \
        "$(python3 -c "print(f'{${f_claim#* } / ${e_claim#* }:.2f}')")"
    printf '  %-44s %14s %14s %8s\n' "enqueue_reset" "$(echo "$e_enq" | tr ' ' /)" "$(echo "$f_enq" | tr ' ' /)" \
        "$(python3 -c "print(f'{${f_enq#* } / ${e_enq#* }:.2f}')")"
    echo "  runs (p50/p99): claim empty ${e_claims[*]// //}; full ${f_claims[*]// //}; enqueue empty ${e_enqs[*]// //}; full ${f_enqs[*]// //}"
    echo "  prune one day (jobs|attempts removed: $pruned): ${took} ms (target < 5 s)"
    echo "  tables after prune and VACUUM: $(python3 -c "print(f'{$tables / 1048576:.0f} MiB, {$tables / $live:.2f} x the same rows loaded afresh ({$live / 1048576:.0f} MiB)')") (target <= 1.2)"
}
