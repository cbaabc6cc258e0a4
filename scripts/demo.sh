#!/usr/bin/env bash
# The main job end to end, on embedded defaults, on a fresh Debian machine as root:
# a private PostgreSQL, the schema migrated, a few password-reset requests enqueued (one a
# duplicate, one scheduled for later, one refused as bad input) and the queue shown.
# Everything it starts is stopped and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

ensure_system_packages

run_dir=$(mktemp -d /tmp/cognito-reset-demo.XXXXXX)
cleanup() {
    pg_stop "$run_dir/pg"
    rm -rf "$run_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pg_start "$run_dir/pg"

log "building cognito-reset"
swift build --product cognito-reset >/dev/null
bin=.build/debug/cognito-reset
pool=us-east-1_DemoPool1

show() { printf '\n$ %s\n' "$*" >&2; "$@"; }
# psql on the demo database; the URL (it holds a password) is never echoed.
sql() { printf '\n$ psql "$DATABASE_URL" %s\n' "$*" >&2; psql "$DATABASE_URL" -X "$@"; }

show "$bin" migrate
show "$bin" migrate status

for user in alice bob carol; do
    show "$bin" enqueue --pool "$pool" --user "$user" --metadata source=demo
done
# The same user again: the active job is returned, no second email would be sent.
show "$bin" enqueue --pool "$pool" --user alice
# Scheduled for the night of a planned migration, and urgent work ahead of it.
show "$bin" enqueue --pool "$pool" --user dave --run-at +8h --priority 200
show "$bin" enqueue --pool "$pool" --user erin --priority 0 --json
# Bad input is refused with one line and exit code 2, and nothing is written.
set +e
show "$bin" enqueue --pool not-a-pool-id --user mallory
echo "(exit code $?)" >&2
set -e
# Other systems can enqueue with plain SQL in their own transactions.
sql -q -c "SELECT cognito_reset.enqueue_reset('$pool', 'frank') AS job_id"

sql -c \
    "SELECT id, user_pool_id, username, state, priority, run_at::timestamp(0) AS run_at, client_metadata FROM cognito_reset.jobs ORDER BY id"
sql -x -c "SELECT * FROM cognito_reset.queue_status"
log "demo finished; the private PostgreSQL is stopped and removed"
