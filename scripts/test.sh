#!/usr/bin/env bash
# Runs every test against real parts: installs what is missing, starts a private PostgreSQL and
# moto (the Cognito emulator), checks and unit-tests the Prometheus rules with promtool, builds,
# runs `swift test`, and always stops both. Without arguments
# it then runs a 2-minute chaos run (scripts/chaos.sh) and builds the Debian package and tests it
# installed (scripts/lib/package_test.sh).
# Exit code: the tests'.
#   scripts/test.sh [swift test arguments, e.g. --filter PostgresTests]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

ensure_system_packages
# moto (Cognito emulator, with Flask for its server mode) and boto3 for the test fixtures.
ensure_python_packages "moto.server:moto[server]" "flask:moto[server]" "boto3:boto3"

make_run_dir cognito-reset-test

pg_start "$run_dir/pg"
moto_start "$run_dir/moto"

log "swift build"
swift build
export COGNITO_RESET_BIN="$PWD/.build/debug/cognito-reset"

status=0
# The alert rules: syntax, then promtool's unit tests (each alert fires in its scenario, stays
# silent on a healthy fleet, and resolves). Tests/CLITests/MonitoringTests.swift loads them
# into a live Prometheus.
# The house format (.swift-format): CI fails on drift. `swift format format -i -r Sources Tests
# Plugins Package.swift` puts a tree right.
log "swift format lint --strict"
swift format lint --strict --configuration .swift-format -r Sources Tests Plugins Package.swift || status=$?
log "promtool check rules, promtool test rules (monitoring/prometheus)"
promtool check rules monitoring/prometheus/alerts.yml >/dev/null || status=$?
promtool test rules monitoring/prometheus/tests/*.yml || status=$?

if [ $# -gt 0 ]; then
    log "swift test $*"
    swift test "$@" || status=$?
else
    # Suites named *TimingTests measure call rates in wall-clock time: they run after all the
    # others, alone, so the load of a hundred parallel tests does not blur what they measure.
    log "swift test (all but the timing suites)"
    swift test --skip 'TimingTests' || status=$?
    log "swift test (timing suites)"
    swift test --skip-build --filter 'TimingTests' || status=$?
    # Compound faults at random against a primary, its synchronous standby and three workers
    # (docs/guarantees.md): the binary built above, two minutes of faults.
    log "chaos run (scripts/chaos.sh --minutes 2)"
    scripts/chaos.sh --minutes 2 || status=$?
    # The Debian package: built, installed, run on a host whose Swift toolchain is hidden, purged.
    log "Debian package (scripts/package.sh, then installed and run)"
    scripts/lib/package_test.sh || status=$?
fi
exit "$status"
