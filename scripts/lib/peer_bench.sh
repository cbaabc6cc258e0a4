# The peer comparison of scripts/bench.sh (sourced; needs common.sh, a running pg_start server,
# $bin_dir with release binaries and $run_dir). On one workload, side by side, medians of 3:
#   (a) cognito-reset worker --drain --rate unlimited --concurrency 16,
#   (b) pgqueuer 1.6.0 (Python, asyncpg) from PyPI in a virtualenv made here, concurrency 16,
#   (c) pgbench running a minimal claim + complete on a minimal table (the floor: no HTTP at all),
# each job of (a) and (b) one SigV4-signed POST to the same fake Cognito (cognito-reset-bench
# --serve), on a PostgreSQL of its own with initdb's settings. Per job: PostgreSQL CPU (every backend, exited ones included), WAL bytes and
# transactions, from scripts/lib/pg_measure.py.

peer_jobs=${PEER_JOBS:-20000}
peer_concurrency=16

# A virtualenv with pgqueuer and what scripts/lib/peer_pgqueuer.py uses (Debian's python3 needs
# python3-venv for `python3 -m venv`).
peer_venv() {
    local venv=$run_dir/peer-venv
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        [ "$(id -u)" = 0 ] || die "python3 -m venv does not work; install python3-venv"
        log "installing python3-venv (apt)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install --quiet --disable-pip-version-check pgqueuer==1.6.0 asyncpg botocore aiohttp >/dev/null
    echo "$venv/bin/python"
}

# measured NAME CMD...: runs CMD between two snapshots; appends "seconds cpu wal xacts" to $run_dir/NAME.runs.
measured() {
    local name=$1 url=$2; shift 2
    local before after start end
    before=$(python3 scripts/lib/pg_measure.py snapshot --url "$url" --data "$PG_RUN_DIR/data")
    start=$(date +%s.%N)
    "$@" >"$run_dir/$name.out"
    end=$(date +%s.%N)
    after=$(python3 scripts/lib/pg_measure.py snapshot --url "$url" --data "$PG_RUN_DIR/data")
    printf '%s\n' "$before" >"$run_dir/before.json"
    printf '%s\n' "$after" >"$run_dir/after.json"
    python3 - "$run_dir/before.json" "$run_dir/after.json" "$peer_jobs" "$start" "$end" >>"$run_dir/$name.runs" <<'PY'
import json, subprocess, sys
d = json.loads(subprocess.run([sys.executable, "scripts/lib/pg_measure.py", "diff", sys.argv[1], sys.argv[2], "--jobs", sys.argv[3]],
                              check=True, capture_output=True, text=True).stdout)
print(f"{float(sys.argv[5]) - float(sys.argv[4]):.3f} {d['cpu_us_per_job']:.1f} {d['wal_bytes_per_job']:.0f} {d['xacts_per_job']:.3f}")
PY
}

# column NAME K: the median of field K (1 seconds, 2 cpu, 3 wal, 4 xacts) over NAME's runs.
column() { awk -v k="$2" '{print $k}' "$run_dir/$1.runs" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

peer_bench() {
    local python url_file fake_url fake_pid admin i db url done_count
    local saved_url=$DATABASE_URL saved_dir=$PG_RUN_DIR saved_port=$PG_PORT
    log "peer comparison: $peer_jobs jobs, concurrency $peer_concurrency, medians of 3"
    python=$(peer_venv)
    # A server of its own with initdb's settings (fsync and full-page writes on), as a peer's
    # users run it: WAL and CPU per job are then what production pays.
    trap 'pg_stop "$run_dir/pg-peer"; moto_stop "$run_dir/moto"; pg_stop "$run_dir/pg"; rm -rf "$run_dir"' EXIT
    PG_DURABLE=1 pg_start "$run_dir/pg-peer"
    admin=$DATABASE_URL
    url_file=$run_dir/fake.url
    "$bin_dir/cognito-reset-bench" --serve "$url_file" &
    fake_pid=$!
    for _ in $(seq 1 100); do [ -s "$url_file" ] && break; sleep 0.1; done
    fake_url=$(cat "$url_file")
    rm -f "$run_dir"/{worker,pgqueuer,pgbench}.runs
    for i in 1 2 3; do
        # (a) the worker
        db=peer_worker_$i; url=${admin%/*}/$db
        psql -q "$admin" -c "CREATE DATABASE $db" >/dev/null
        DATABASE_URL=$url "$bin_dir/cognito-reset" migrate >/dev/null
        psql -q "$url" -c "INSERT INTO cognito_reset.jobs (user_pool_id, username) SELECT 'us-east-1_Bench1', 'user' || g FROM generate_series(1, $peer_jobs) g" \
            -c "VACUUM ANALYZE cognito_reset.jobs" >/dev/null
        measured worker "$admin" env DATABASE_URL="$url" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=AKIDBENCH \
            AWS_SECRET_ACCESS_KEY=bench-secret AWS_EC2_METADATA_DISABLED=true COGNITO_RESET_LOG_LEVEL=error \
            AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER="$fake_url" \
            "$bin_dir/cognito-reset" worker --drain --rate unlimited --concurrency "$peer_concurrency"
        done_count=$(psql -qtA "$url" -c "SELECT count(*) FROM cognito_reset.jobs WHERE state = 'succeeded'")
        [ "$done_count" = "$peer_jobs" ] || die "worker run $i: $done_count of $peer_jobs jobs succeeded"

        # (b) pgqueuer
        db=peer_pgqueuer_$i; url=${admin%/*}/$db
        psql -q "$admin" -c "CREATE DATABASE $db" >/dev/null
        "$python" scripts/lib/peer_pgqueuer.py install --dsn "$url" >/dev/null
        "$python" scripts/lib/peer_pgqueuer.py enqueue --dsn "$url" --jobs "$peer_jobs" >/dev/null
        psql -q "$url" -c "VACUUM ANALYZE" >/dev/null
        measured pgqueuer "$admin" "$python" scripts/lib/peer_pgqueuer.py work --dsn "$url" --jobs "$peer_jobs" \
            --concurrency "$peer_concurrency" --url "$fake_url"

        # (c) pgbench: claim 16, complete them, on a minimal table
        db=peer_pgbench_$i; url=${admin%/*}/$db
        psql -q "$admin" -c "CREATE DATABASE $db" >/dev/null
        psql -q "$url" \
            -c "CREATE TABLE mini (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, state text NOT NULL DEFAULT 'pending', locked_by int)" \
            -c "CREATE INDEX mini_pending ON mini (id) WHERE state = 'pending'" \
            -c "CREATE INDEX mini_running ON mini (locked_by) WHERE state = 'running'" \
            -c "INSERT INTO mini (state) SELECT 'pending' FROM generate_series(1, $peer_jobs)" -c "VACUUM ANALYZE mini" >/dev/null
        cat >"$run_dir/claim.sql" <<'SQL'
WITH next AS (SELECT id FROM mini WHERE state = 'pending' ORDER BY id LIMIT 16 FOR UPDATE SKIP LOCKED)
UPDATE mini SET state = 'running', locked_by = :client_id FROM next WHERE mini.id = next.id;
UPDATE mini SET state = 'done', locked_by = NULL WHERE state = 'running' AND locked_by = :client_id;
SQL
        measured pgbench "$admin" "$(pg_bindir)/pgbench" -n -c 2 -t $((peer_jobs / 16 / 2)) -f "$run_dir/claim.sql" "$url"
    done
    kill "$fake_pid" 2>/dev/null || true
    wait "$fake_pid" 2>/dev/null || true
    pg_stop "$run_dir/pg-peer"
    export DATABASE_URL=$saved_url PG_RUN_DIR=$saved_dir PG_PORT=$saved_port

    local w_rate q_rate w_cpu q_cpu b_cpu w_wal q_wal b_wal
    w_rate=$(python3 -c "print(f'{$peer_jobs / $(column worker 1):.0f}')")
    q_rate=$(python3 -c "print(f'{$peer_jobs / $(column pgqueuer 1):.0f}')")
    w_cpu=$(column worker 2); q_cpu=$(column pgqueuer 2); b_cpu=$(column pgbench 2)
    w_wal=$(column worker 3); q_wal=$(column pgqueuer 3); b_wal=$(column pgbench 3)
    echo "Peer comparison: $peer_jobs jobs, concurrency $peer_concurrency, one signed POST each to the same fake Cognito (medians of 3)"
    printf '  %-34s %12s %14s %12s %14s\n' "" "jobs/s" "PG CPU/job" "WAL/job" "xacts/job"
    printf '  %-34s %12s %11s us %10s B %14s\n' "cognito-reset worker (a)" "$w_rate" "$w_cpu" "$w_wal" "$(column worker 4)"
    printf '  %-34s %12s %11s us %10s B %14s\n' "pgqueuer 1.6.0 (b)" "$q_rate" "$q_cpu" "$q_wal" "$(column pgqueuer 4)"
    printf '  %-34s %12s %11s us %10s B %14s\n' "pgbench minimal claim+complete (c)" "-" "$b_cpu" "$b_wal" "$(column pgbench 4)"
    echo "  ratios (a)/(b): jobs/s $(python3 -c "print(f'{$w_rate / $q_rate:.2f}')") (target >= 3), PG CPU/job $(python3 -c "print(f'{$w_cpu / $q_cpu:.2f}')") (target <= 0.5), WAL/job $(python3 -c "print(f'{$w_wal / $q_wal:.2f}')") (target <= 0.5)"
    echo "  runs (seconds cpu_us wal_B xacts): worker: $(tr '\n' ';' <"$run_dir/worker.runs") pgqueuer: $(tr '\n' ';' <"$run_dir/pgqueuer.runs") pgbench: $(tr '\n' ';' <"$run_dir/pgbench.runs")"
}
