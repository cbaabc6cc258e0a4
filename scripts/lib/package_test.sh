#!/usr/bin/env bash
# The Debian package's test, run by scripts/test.sh with its private PostgreSQL (DATABASE_URL, a
# superuser) and moto (MOTO_ENDPOINT) up. It builds the package with scripts/package.sh, installs
# it with dpkg, and with the Swift toolchain's folder hidden (a private mount namespace over it)
# runs the installed binary through migrate, enqueue and worker --drain against that PostgreSQL
# and moto; verifies the installed units; purges the package (always, even when a step fails)
# and checks none of its files are left. A script of its own, not a function: errexit holds
# inside it whatever the caller's `||`.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/common.sh
[ -n "${DATABASE_URL:-}" ] && [ -n "${MOTO_ENDPOINT:-}" ] || die "run by scripts/test.sh (needs DATABASE_URL and MOTO_ENDPOINT)"
# The installed binary refuses COGNITO_RESET_* names it does not know, such as test.sh's
# COGNITO_RESET_BIN: it gets none of the caller's.
for name in $(compgen -e | grep '^COGNITO_RESET_' || true); do unset "$name"; done

deb=$(scripts/package.sh | tail -1)
[ -f "$deb" ] || die "scripts/package.sh printed no package path"
log "package: $(basename "$deb"), $(du -h "$deb" | cut -f1) (target <= 25 MiB)"

files=$(mktemp /tmp/cognito-reset-package-files.XXXXXX)
trap 'dpkg --purge cognito-reset >/dev/null 2>&1 || true; rm -f "$files"' EXIT
dpkg -i "$deb" >/dev/null
dpkg -L cognito-reset >"$files"

# What the maintainer scripts set up, without systemd running.
id cognito-reset >/dev/null || die "postinst did not create the cognito-reset user"
[ "$(stat -c '%a %U %G' /etc/cognito-reset/cognito-reset.env)" = "640 root cognito-reset" ] \
    || die "cognito-reset.env is not 0640 root:cognito-reset"
[ "$(stat -c '%a %U %G' /etc/cognito-reset/import.env)" = "640 root cognito-reset" ] \
    || die "import.env is not 0640 root:cognito-reset"
[ "$(stat -c '%a %U %G' /var/lib/cognito-reset)" = "750 cognito-reset cognito-reset" ] \
    || die "/var/lib/cognito-reset is not 0750 cognito-reset"
[ -s /usr/share/man/man1/cognito-reset.1.gz ] && [ -s /usr/share/man/man1/cognito-reset-worker.1.gz ] \
    || die "man pages missing"
# The rules as installed are the ones promtool tested.
promtool check rules /usr/share/cognito-reset/monitoring/prometheus/alerts.yml >/dev/null \
    || die "the installed alert rules do not load"
[ -s /usr/share/cognito-reset/monitoring/grafana/cognito-reset.json ] \
    && [ -s /usr/share/cognito-reset/monitoring/grafana/cognito-reset-sql.json ] || die "dashboards missing"
log "systemd-analyze verify (installed units)"
systemd-analyze verify /usr/lib/systemd/system/cognito-reset.service \
    /usr/lib/systemd/system/cognito-reset-prune.service /usr/lib/systemd/system/cognito-reset-prune.timer \
    /usr/lib/systemd/system/cognito-reset-import.service /usr/lib/systemd/system/cognito-reset-import.path

# The run, on a host without Swift: the toolchain's folder is an empty tmpfs in here.
toolchain=$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")
[ "$toolchain" != / ] && [ "$toolchain" != /usr ] || die "the toolchain is in $toolchain: cannot hide it"
psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS package_test" -c "CREATE DATABASE package_test" >/dev/null
log "installed binary with $toolchain hidden: migrate, enqueue, worker --drain"
unshare --mount --propagation private -- env TOOLCHAIN="$toolchain" DB="${DATABASE_URL%/*}/package_test" \
    MOTO="$MOTO_ENDPOINT" bash -euo pipefail -c '
    mount -t tmpfs -o ro none "$TOOLCHAIN"
    [ -z "$(ls -A "$TOOLCHAIN")" ] || { echo "the toolchain is not hidden" >&2; exit 1; }
    if ldd /usr/bin/cognito-reset | grep -q "not found\|$TOOLCHAIN"; then
        ldd /usr/bin/cognito-reset >&2; echo "the installed binary needs the toolchain" >&2; exit 1
    fi
    /usr/bin/cognito-reset --version
    pool=$(python3 scripts/lib/moto_fixture.py pool --endpoint "$MOTO" --users pkg-alice:confirmed pkg-bob:confirmed \
        | python3 -c "import json, sys; print(json.load(sys.stdin)[\"pool_id\"])")
    export DATABASE_URL=$DB AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=package AWS_SECRET_ACCESS_KEY=package-secret \
        AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER=$MOTO
    /usr/bin/cognito-reset migrate >/dev/null
    /usr/bin/cognito-reset enqueue --pool "$pool" --user pkg-alice >/dev/null
    /usr/bin/cognito-reset enqueue --pool "$pool" --user pkg-bob >/dev/null
    /usr/bin/cognito-reset worker --drain --log-level error
    done=$(psql -qtA "$DB" -c "SELECT count(*) FROM cognito_reset.jobs WHERE state = '"'"'succeeded'"'"'")
    [ "$done" = 2 ] || { echo "$done of 2 jobs succeeded" >&2; exit 1; }
'

# Upgrade (the same package again: postinst runs with the old version, as on an upgrade) keeps an
# edited conffile and its mode; remove keeps the configuration and the state folder.
log "dpkg -i again (upgrade path), dpkg --remove"
printf 'COGNITO_RESET_CONCURRENCY=8\n' >>/etc/cognito-reset/cognito-reset.env
dpkg -i --force-confold "$deb" >/dev/null
grep -qx 'COGNITO_RESET_CONCURRENCY=8' /etc/cognito-reset/cognito-reset.env || die "the upgrade lost an edited setting"
[ "$(stat -c '%a %U %G' /etc/cognito-reset/cognito-reset.env)" = "640 root cognito-reset" ] \
    || die "the upgrade changed cognito-reset.env's mode"
dpkg --remove cognito-reset >/dev/null
[ -f /etc/cognito-reset/cognito-reset.env ] && [ -d /var/lib/cognito-reset ] || die "dpkg --remove did not keep the configuration and state"
[ ! -e /usr/bin/cognito-reset ] || die "dpkg --remove left the binary"

log "dpkg --purge"
dpkg --purge cognito-reset >/dev/null
left=()
while IFS= read -r path; do
    # Folders the package shares with others (/usr, /etc ...) stay; its own files must not.
    if [ -e "$path" ] && [ ! -d "$path" ]; then left+=("$path"); fi
done <"$files"
for path in /etc/cognito-reset /var/lib/cognito-reset /usr/share/doc/cognito-reset /usr/share/cognito-reset; do
    if [ -e "$path" ]; then left+=("$path"); fi
done
[ ${#left[@]} -eq 0 ] || die "dpkg --purge left: ${left[*]}"
psql -q "$DATABASE_URL" -c "DROP DATABASE package_test" >/dev/null
rm -f "$files"
trap - EXIT
log "package test passed"
