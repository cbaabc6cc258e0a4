#!/usr/bin/env bash
# Runs every test against real parts: installs what is missing, starts a private PostgreSQL,
# builds, runs `swift test`, and always stops the server. Exit code: the tests'.
#   scripts/test.sh [swift test arguments, e.g. --filter PostgresTests]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

ensure_system_packages

run_dir=$(mktemp -d /tmp/cognito-reset-test.XXXXXX)
cleanup() {
    pg_stop "$run_dir/pg"
    rm -rf "$run_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pg_start "$run_dir/pg"

log "swift build"
swift build
export COGNITO_RESET_BIN="$PWD/.build/debug/cognito-reset"

log "swift test"
status=0
swift test "$@" || status=$?
exit "$status"
