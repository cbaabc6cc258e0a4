#!/usr/bin/env bash
# The main job end to end, on embedded defaults, on a fresh Debian machine as root:
# a private PostgreSQL and moto (an open-source Cognito emulator), a demo user pool with
# confirmed users plus a few that fail for real reasons, reset requests enqueued the ways other
# systems and operators do (plain SQL, enqueue_reset, the CLI), the worker draining the queue,
# `status` and `jobs` showing the result, and moto confirming the users must now reset their
# password. Everything it starts is stopped and removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

ensure_system_packages
ensure_python_packages "moto.server:moto[server]" "flask:moto[server]" "boto3:boto3"

make_run_dir cognito-reset-demo

pg_start "$run_dir/pg"
moto_start "$run_dir/moto"

log "building cognito-reset"
swift build --product cognito-reset >"$run_dir/build.log" 2>&1 || { cat "$run_dir/build.log" >&2; die "build failed"; }
bin=.build/debug/cognito-reset

show() { printf '\n$ %s\n' "$*" >&2; "$@"; }
# psql on the demo database; the URL (it holds a password) is never echoed.
sql() { printf '\n$ psql "$DATABASE_URL" %s\n' "$*" >&2; psql "$DATABASE_URL" -X "$@"; }

# AWS settings as an operator would set them; moto accepts any key.
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo-secret AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER="$MOTO_ENDPOINT"

log "creating the demo user pool in moto"
fixture=$(python3 scripts/lib/moto_fixture.py pool --endpoint "$MOTO_ENDPOINT" \
    --users alice:confirmed bob:confirmed carol:confirmed dave:confirmed erin:confirmed \
            mallory:disabled oscar:unverified)
pool=$(printf '%s' "$fixture" | python3 -c 'import json, sys; print(json.load(sys.stdin)["pool_id"])')
log "pool $pool: 5 confirmed users with verified emails, mallory disabled, oscar without a verified email"

show "$bin" migrate

# Another system enqueues with plain SQL in its own transaction...
sql -q -c "INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES ('$pool', 'alice'), ('$pool', 'bob'), ('$pool', 'mallory')"
# ...or with the function, which returns the user's active job instead of a second one.
sql -q -c "SELECT cognito_reset.enqueue_reset('$pool', 'carol') AS job_id, cognito_reset.enqueue_reset('$pool', 'alice') AS same_job_for_alice"
# Operators use the CLI: a ticket, an unknown user, a user without a verified email.
show "$bin" enqueue --pool "$pool" --user dave --metadata ticket=OPS-42
show "$bin" enqueue --pool "$pool" --user erin --priority 0
show "$bin" enqueue --pool "$pool" --user ghost
show "$bin" enqueue --pool "$pool" --user oscar
# Bad input is refused with one line and exit code 2, and nothing is written.
set +e
show "$bin" enqueue --pool not-a-pool-id --user eve
echo "(exit code $?)" >&2
set -e

show "$bin" status

# The worker drains the queue at Cognito's rate (25/s) and exits when nothing is runnable.
show "$bin" worker --drain --log-level info

show "$bin" status
show "$bin" jobs list
show "$bin" jobs show 1

log "what moto says about each user now"
for user in alice bob carol dave erin mallory oscar; do
    status=$(python3 scripts/lib/moto_fixture.py status --endpoint "$MOTO_ENDPOINT" --pool "$pool" --user "$user" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])')
    printf '  %-8s %s\n' "$user" "$status"
done
log "demo finished; PostgreSQL and moto are stopped and removed"
