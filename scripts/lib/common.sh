# Shared helpers for scripts/*.sh. Source it; it defines functions and changes nothing by itself.
# Works on a fresh Debian 12 machine as root: what is missing is installed, nothing is assumed.

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The newest installed PostgreSQL server's bin folder (Debian keeps it off PATH).
pg_bindir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# apt_install PACKAGE...: installs the Debian packages given (none: nothing to do); as root only.
apt_install() {
    [ $# -gt 0 ] || return 0
    [ "$(id -u)" = 0 ] || die "missing packages ($*); run as root to install them"
    log "installing $* (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The packages are tools for the tests (their own private servers): keep their postinst
    # scripts from starting system-wide services (Prometheus on :9090, a PostgreSQL cluster, a
    # PgBouncer) unless the machine already has its own policy.
    local policy=/usr/sbin/policy-rc.d guard=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && guard=$policy
    fi
    local status=0
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null || status=$?
    [ -z "$guard" ] || rm -f "$guard"
    return "$status"
}

# Installs the Debian packages the build and the tests need, if any is missing.
ensure_system_packages() {
    local missing=()
    [ -n "$(pg_bindir)" ] && [ -x "$(pg_bindir)/initdb" ] || missing+=(postgresql)
    command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
    [ -f /usr/include/postgresql/libpq-fe.h ] || missing+=(libpq-dev)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    # Debian images often have python3 (cloud-init needs it) without pip.
    python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
    # systemd-analyze checks the units in systemd/ offline (Tests/CLITests/SystemdUnitTests.swift).
    command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
    # PgBouncer in transaction pooling, in front of a private server (Tests/CLITests/PgBouncerTests.swift).
    command -v pgbouncer >/dev/null 2>&1 || missing+=(pgbouncer)
    # promtool checks and unit-tests the alert rules; a private Prometheus scrapes a worker with
    # them loaded (Tests/CLITests/MonitoringTests.swift).
    command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
    apt_install "${missing[@]}"
    id postgres >/dev/null 2>&1 || die "the postgres system user is missing (it comes with the postgresql package)"
}

# Installs the Python packages given (pip names) unless importable already. Usage:
#   ensure_python_packages module:pip-spec ...
ensure_python_packages() {
    local spec module package
    for spec in "$@"; do
        module=${spec%%:*}
        package=${spec#*:}
        if ! python3 -c "import $module" >/dev/null 2>&1; then
            log "installing $package (pip)"
            python3 -m pip install --quiet --disable-pip-version-check "$package" \
                || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "$package"
        fi
    done
}

# make_run_dir NAME: sets run_dir to a new private folder under /tmp and arranges that, however
# the script ends, the PostgreSQL and moto started in it are stopped and the folder removed.
make_run_dir() {
    run_dir=$(mktemp -d "/tmp/$1.XXXXXX")
    trap 'moto_stop "$run_dir/moto"; pg_stop "$run_dir/pg"; rm -rf "$run_dir"' EXIT
    trap 'exit 130' INT TERM
}

# A TCP port nobody listens on right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# pg_start DIR: a private PostgreSQL in DIR (data, socket and log together, owned by the
# postgres user, which initdb and postgres require), on a free port, password auth over TCP.
# Exports DATABASE_URL (superuser), PG_RUN_DIR, PG_PORT.
pg_start() {
    local dir=$1 bindir port password
    bindir=$(pg_bindir)
    [ -x "$bindir/initdb" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
    mkdir -p "$dir"
    # The postgres user must be able to reach DIR (mktemp makes private 0700 parents).
    chmod a+x "$(dirname "$dir")"
    chown postgres:postgres "$dir"
    chmod 700 "$dir"
    password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    printf '%s\n' "$password" > "$dir/pwfile"
    chown postgres:postgres "$dir/pwfile"
    chmod 600 "$dir/pwfile"
    runuser -u postgres -- "$bindir/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pwfile" \
        --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    rm -f "$dir/pwfile"
    port=$(free_port)
    # Throw-away servers: durability settings off for speed. Never use these settings for real data.
    # PG_DURABLE=1 keeps initdb's settings (for figures comparable with other queues').
    local settings="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [ "${PG_DURABLE:-0}" = 1 ] && settings=""
    runuser -u postgres -- "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400 $settings" \
        start >/dev/null || { cat "$dir/postgres.log" >&2; die "PostgreSQL did not start"; }
    export PG_RUN_DIR=$dir PG_PORT=$port
    export DATABASE_URL="postgresql://postgres:$password@127.0.0.1:$port/postgres"
    log "private PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($dir)"
}

# pg_stop DIR: stops the server pg_start started there (quietly if it is not running).
pg_stop() {
    local dir=$1
    [ -f "$dir/data/postmaster.pid" ] || return 0
    runuser -u postgres -- "$(pg_bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# moto_start DIR: moto (the open-source AWS emulator) on a free loopback port, log in DIR.
# Exports MOTO_ENDPOINT.
moto_start() {
    local dir=$1 port i
    mkdir -p "$dir"
    port=$(free_port)
    python3 -m moto.server -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
    echo $! >"$dir/moto.pid"
    for i in $(seq 1 300); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
            export MOTO_ENDPOINT="http://127.0.0.1:$port"
            log "moto on $MOTO_ENDPOINT"
            return 0
        fi
        kill -0 "$(cat "$dir/moto.pid")" 2>/dev/null || break
        sleep 0.1
    done
    cat "$dir/moto.log" >&2
    die "moto did not start"
}

# moto_stop DIR: stops the moto moto_start started there.
moto_stop() {
    local dir=$1
    [ -f "$dir/moto.pid" ] || return 0
    kill "$(cat "$dir/moto.pid")" 2>/dev/null || true
    rm -f "$dir/moto.pid"
}

# pg_resume DIR PORT: starts again a server pg_start created in DIR and pg_stop stopped, on the
# same port (tests that take the database away and bring it back).
pg_resume() {
    local dir=$1 port=$2
    runuser -u postgres -- "$(pg_bindir)/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null || { cat "$dir/postgres.log" >&2; die "PostgreSQL did not start again"; }
}
