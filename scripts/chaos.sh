#!/usr/bin/env bash
# A chaos run, in the style of Jepsen: proves the queue's delivery guarantee under compound faults.
#
#   scripts/chaos.sh [--minutes N] [--seed S]
#
# Three `cognito-reset worker` processes and steady enqueuers (plain INSERT, enqueue_reset(), CSV
# import, cancels) run against a private PostgreSQL primary with a synchronous streaming standby
# (scripts/lib/pg_cluster.sh) and a fake Cognito that fails at random (scripts/lib/fake_cognito.py).
# For N minutes (default 10) faults are injected one at a time at random: a worker SIGKILLed, a
# worker SIGSTOPped past its lease, PostgreSQL restarted (fast and immediate), the workers'
# connections terminated, a failover to the standby, a hung primary. Then the queue settles and
# scripts/lib/chaos.py checks the invariants against the database and the fake's call log:
# nothing lost or stuck, no call after a cancel or success committed, no outcome written over a
# newer claim, audit and calls matching, every duplicate call explained. The report goes to
# stdout; its last line is
#   chaos: <J> jobs, <C> calls, <F> faults, lost 0, stuck 0, duplicates <D>
# Exit status: 0 all invariants hold, 1 one is broken (printed with evidence), 2 the harness failed.
#
# The binary: $COGNITO_RESET_BIN, else `swift build --product cognito-reset` (debug). Run as root
# (servers run as the postgres user). Everything lives in one /tmp/cognito-reset-chaos.XXXXXX
# folder, removed at the end; after a failed run (or with CHAOS_KEEP=1) its logs are kept there
# (not the databases).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

minutes=10
seed=()
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) minutes=${2:?--minutes needs a value}; shift 2 ;;
    --minutes=*) minutes=${1#*=}; shift ;;
    --seed) seed=(--seed "${2:?--seed needs a value}"); shift 2 ;;
    --seed=*) seed=(--seed "${1#*=}"); shift ;;
    -h|--help) sed -n '2,22p' "$0" | cut -c3-; exit 0 ;;
    *) die "unknown argument: $1 (usage: scripts/chaos.sh [--minutes N] [--seed S])" ;;
    esac
done
[[ $minutes =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--minutes: a number of minutes, e.g. 2"
[ "$(id -u)" = 0 ] || die "run as root (the PostgreSQL servers run as the postgres user)"

missing=()
[ -n "$(pg_bindir)" ] && [ -x "$(pg_bindir)/pg_basebackup" ] || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
apt_install "${missing[@]}"
id postgres >/dev/null 2>&1 || die "the postgres system user is missing (it comes with the postgresql package)"

if [ -n "${COGNITO_RESET_BIN:-}" ]; then
    bin=$COGNITO_RESET_BIN
else
    log "swift build --product cognito-reset"
    swift build --product cognito-reset >&2
    bin=$PWD/.build/debug/cognito-reset
fi
[ -x "$bin" ] || die "no cognito-reset binary at $bin"

run_dir=$(mktemp -d /tmp/cognito-reset-chaos.XXXXXX)
child=

# However the run ends: every process it started is ended (by the pids it recorded), both
# servers are stopped (resumed first, in case a hang was in progress), and the folder removed,
# except the logs of a failed run.
cleanup() {
    local status=$? pid_file pid dir
    if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
        kill -TERM "$child" 2>/dev/null || true
        wait "$child" 2>/dev/null || true
    fi
    for pid_file in "$run_dir"/pids/*.pid; do
        [ -f "$pid_file" ] || continue
        pid=$(cat "$pid_file")
        kill -CONT "$pid" 2>/dev/null || true
        kill -KILL "$pid" 2>/dev/null || true
    done
    for dir in "$run_dir"/pg-*; do
        [ -d "$dir" ] || continue
        for pid in $(scripts/lib/pg_cluster.sh pids "$dir" 2>/dev/null); do kill -CONT "$pid" 2>/dev/null || true; done
        scripts/lib/pg_cluster.sh stop "$dir" immediate >/dev/null 2>&1 || true
    done
    if [ "$status" = 0 ] && [ -z "${CHAOS_KEEP:-}" ]; then
        rm -rf "$run_dir"
    else
        rm -rf "$run_dir"/pg-*/data
        log "logs of this run kept in $run_dir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# In the background, so that a SIGTERM reaches the trap at once (bash runs traps only between
# foreground commands); the trap then stops it.
python3 scripts/lib/chaos.py --bin "$bin" --run-dir "$run_dir" --minutes "$minutes" "${seed[@]}" &
child=$!
status=0
wait "$child" || status=$?
child=
exit "$status"
