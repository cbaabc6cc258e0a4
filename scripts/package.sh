#!/usr/bin/env bash
# Builds the Debian package: dist/cognito-reset_<version>_amd64.deb, printed as the last line.
# The binary links the Swift runtime and Foundation statically (--static-swift-stdlib) and is
# stripped, so the host needs no Swift toolchain; Depends: is computed from the binary by
# dpkg-shlibdeps and names Debian packages only (libpq5 among them). The version is the one in
# VERSION. Run on Debian 12 as root (it installs dpkg-dev, binutils and lintian when missing).
#   scripts/package.sh            build the package and check it with lintian
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

ensure_system_packages
missing=()
command -v dpkg-shlibdeps >/dev/null 2>&1 || missing+=(dpkg-dev)
command -v strip >/dev/null 2>&1 || missing+=(binutils)
command -v lintian >/dev/null 2>&1 || missing+=(lintian)
apt_install "${missing[@]}"

version=$(tr -d '[:space:]' <VERSION)
arch=$(dpkg --print-architecture)
package=cognito-reset
maintainer="cognito-reset developers <cognito-reset@example.com>"
work=$(mktemp -d /tmp/cognito-reset-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root

log "building the release binary (static Swift runtime; the first release build takes several minutes)"
# Full RELRO (-z relro -z now): every dynamic symbol is bound at start, then the tables that
# hold the bindings are made read-only (lintian: hardening-no-bindnow otherwise).
swift build -c release --static-swift-stdlib -Xlinker -z -Xlinker relro -Xlinker -z -Xlinker now \
    --product cognito-reset >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; die "build failed"; }
built=$(swift build -c release --static-swift-stdlib --show-bin-path)/cognito-reset

# --- files ---------------------------------------------------------------------------------
install -d "$root/usr/bin" "$root/usr/lib/systemd/system" "$root/usr/lib/sysusers.d" \
    "$root/usr/lib/tmpfiles.d" "$root/etc/cognito-reset" "$root/usr/share/man/man1" \
    "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
    "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/doc/$package" \
    "$root/usr/share/lintian/overrides" "$root/DEBIAN"
install -m 0755 "$built" "$root/usr/bin/cognito-reset"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/cognito-reset"
bin=$root/usr/bin/cognito-reset

# The units as in systemd/, with the packaged binary's path.
for unit in cognito-reset.service cognito-reset-prune.service cognito-reset-prune.timer \
            cognito-reset-import.service cognito-reset-import.path; do
    sed 's|/usr/local/bin/cognito-reset|/usr/bin/cognito-reset|g' "systemd/$unit" >"$root/usr/lib/systemd/system/$unit"
done
install -m 0644 systemd/cognito-reset.sysusers "$root/usr/lib/sysusers.d/cognito-reset.conf"
install -m 0644 systemd/cognito-reset.tmpfiles "$root/usr/lib/tmpfiles.d/cognito-reset.conf"

# Settings files (conffiles): the example with its two required settings commented out, so a
# worker started before anyone edits it stops at once saying DATABASE_URL is missing instead of
# trying the example's host. postinst gives them to the cognito-reset group (mode 0640).
sed -e 's|^DATABASE_URL=|#DATABASE_URL=|' -e 's|^AWS_REGION=|#AWS_REGION=|' \
    systemd/cognito-reset.env.example >"$root/etc/cognito-reset/cognito-reset.env"
cat >"$root/etc/cognito-reset/import.env" <<'EOF'
# /etc/cognito-reset/import.env: settings for cognito-reset-import.service (the CSV inbox).
# The inbox imports as a login role of its own in cognito_reset_enqueuer; its password goes in
# /etc/cognito-reset/credentials/import-database-password (0600 root), never here.
# See /usr/share/doc/cognito-reset/operations.md.gz, "Bulk imports and the inbox".
#DATABASE_URL=postgresql://reset_import@db.example.com:5432/app?sslmode=verify-full
#COGNITO_RESET_LOG_LEVEL=info
EOF
chmod 0640 "$root/etc/cognito-reset/"*.env
printf '/etc/cognito-reset/cognito-reset.env\n/etc/cognito-reset/import.env\n' >"$root/DEBIAN/conffiles"

# Man pages (one per command) from the argument parser's own description, by its generate-manual
# plugin; the debug build test.sh made is reused when present (the pages do not depend on it).
source_date=$(git log -1 --format=%cs 2>/dev/null || date -u +%F)
swift package plugin generate-manual --configuration debug --multi-page --date "$source_date" \
    --authors "cognito-reset developers" >"$work/manual.log" 2>&1 \
    || { cat "$work/manual.log" >&2; die "generate-manual failed"; }
manuals=$(find .build/plugins/GenerateManual/outputs -name 'cognito-reset.1' | head -1)
[ -n "$manuals" ] || die "generate-manual wrote no page"
python3 scripts/lib/deb_manpages.py "$(dirname "$manuals")" "$root/usr/share/man/man1"

# Shell completions, from the binary itself.
# bash-completion sources its files: no #! line.
"$bin" --generate-completion-script bash | sed '1{/^#!/d}' >"$root/usr/share/bash-completion/completions/cognito-reset"
"$bin" --generate-completion-script zsh >"$root/usr/share/zsh/vendor-completions/_cognito-reset"
"$bin" --generate-completion-script fish >"$root/usr/share/fish/vendor_completions.d/cognito-reset.fish"

# Documentation.
doc=$root/usr/share/doc/$package
gzip -9n <README.md >"$doc/README.md.gz"
gzip -9n <docs/operations.md >"$doc/operations.md.gz"
# The revision the binary itself names (its build embedded it), so the two cannot disagree.
revision=$("$bin" --version | sed -n 's/.*(revision \(.*\))$/\1/p')
[ -n "$revision" ] || die "cannot read the revision from cognito-reset --version"
{
    printf '%s (%s) unstable; urgency=medium\n\n' "$package" "$version"
    printf '  * Built from revision %s.\n\n' "$revision"
    printf ' -- %s  %s\n' "$maintainer" \
        "$(git log -1 --format=%cD 2>/dev/null || date -uR)"
} | gzip -9n >"$doc/changelog.Debian.gz"
python3 scripts/lib/deb_copyright.py Package.resolved .build/checkouts >"$doc/copyright"

# Prometheus rules and Grafana dashboards, ready to load (docs/operations.md, "Alerts and
# dashboards"); the promtool unit tests stay in the repository.
install -d "$root/usr/share/$package/monitoring/prometheus" "$root/usr/share/$package/monitoring/grafana"
install -m 0644 monitoring/prometheus/alerts.yml "$root/usr/share/$package/monitoring/prometheus/"
install -m 0644 monitoring/grafana/*.json "$root/usr/share/$package/monitoring/grafana/"

# --- maintainer scripts --------------------------------------------------------------------
install -m 0755 scripts/lib/deb/postinst scripts/lib/deb/prerm scripts/lib/deb/postrm "$root/DEBIAN/"
# lintian's findings that stay, each with its reason.
install -m 0644 scripts/lib/deb/lintian-overrides "$root/usr/share/lintian/overrides/$package"

# --- control -------------------------------------------------------------------------------
# dpkg-shlibdeps reads a debian/control; it fails on any library no Debian package provides
# (a Swift runtime left dynamic would stop the build here).
mkdir -p "$work/src/debian"
cat >"$work/src/debian/control" <<EOF
Source: $package

Package: $package
Architecture: $arch
EOF
depends=$(cd "$work/src" && dpkg-shlibdeps -O "$bin" 2>"$work/shlibdeps.log") \
    || { cat "$work/shlibdeps.log" >&2; die "dpkg-shlibdeps failed"; }
depends=${depends#shlibs:Depends=}
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: $package
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $depends, systemd | systemd-standalone-sysusers, systemd | systemd-standalone-tmpfiles
Section: admin
Priority: optional
Description: Amazon Cognito password resets from a PostgreSQL job queue
 A daemon, run under systemd, that claims password-reset requests other systems
 insert into a PostgreSQL table (FOR UPDATE SKIP LOCKED, short leases), calls
 Cognito AdminResetUserPassword with retry, backoff and a fleet-wide rate
 limit, and records every outcome; with bulk CSV imports, a status command,
 Prometheus metrics and journal logs.
 .
 The worker is neither enabled nor started on install: configure
 /etc/cognito-reset/cognito-reset.env first.
EOF
(cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' | sort -z \
    | xargs -0 md5sum) >"$root/DEBIAN/md5sums"

mkdir -p dist
deb=dist/${package}_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null

log "lintian"
# Errors and warnings fail the build (overrides above cover the ones that stay, with reasons).
lintian --fail-on error,warning "$deb" >&2 || die "lintian reports errors or warnings on $deb"
log "package size: $(du -h "$deb" | cut -f1) (target <= 25 MiB)"
echo "$PWD/$deb"
