#!/usr/bin/env bash
# Private PostgreSQL topologies for the fault tests and scripts/chaos.sh: a primary with a
# synchronous streaming standby, promotion, hangs, and PgBouncer in front. Every server keeps
# data, socket, log, port and password in its own DIR (owned by the postgres user, which initdb
# and postgres require); every command prints what a caller needs as KEY=VALUE lines.
#
#   pg_cluster.sh primary DIR                 a primary (replication on, synchronous_commit=on)
#   pg_cluster.sh standby PRIMARY_DIR DIR [PORT]
#                                             a streaming standby of it (pg_basebackup), made the
#                                             primary's synchronous standby once it streams; PORT
#                                             reuses a port, e.g. to rebuild a stopped old primary
#                                             in DIR as a standby of the new one after a failover
#                                             (its old data folder is replaced)
#   pg_cluster.sh sync DIR NAMES              synchronous_standby_names on DIR ('' for none;
#                                             a name no standby has makes every commit wait)
#   pg_cluster.sh promote DIR                 promotes a standby
#   pg_cluster.sh stop DIR [fast|immediate]   stops a server (quietly if it is not running)
#   pg_cluster.sh start DIR                   starts a stopped server again on its port
#   pg_cluster.sh pids DIR                    the postmaster and its children (for SIGSTOP)
#   pg_cluster.sh pgbouncer DIR PG_DIR        PgBouncer (pool_mode=transaction) in front of PG_DIR
#   pg_cluster.sh pgbouncer-stop DIR
# Outputs: PORT=, PASSWORD= (primary), URL= (a postgresql:// URL for the postgres superuser).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/common.sh"

bindir=$(pg_bindir)
as_postgres() { runuser -u postgres -- "$@"; }

# The server's options; synchronous_commit=on (the default) so a synchronous standby is waited for.
server_options() {
    local dir=$1
    printf '%s' "-p $(cat "$dir/port") -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 \
-c wal_level=replica -c max_wal_senders=10 -c hot_standby=on -c wal_keep_size=256MB \
-c fsync=off -c full_page_writes=off"
}

start_server() {
    local dir=$1
    as_postgres "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 -o "$(server_options "$dir")" start >/dev/null \
        || { tail -n 20 "$dir/postgres.log" >&2; die "PostgreSQL in $dir did not start"; }
}

prepare_dir() {
    local dir=$1
    mkdir -p "$dir"
    chmod a+x "$(dirname "$dir")"
    chown postgres:postgres "$dir"
    chmod 700 "$dir"
}

print_url() {
    local dir=$1
    echo "PORT=$(cat "$dir/port")"
    echo "PASSWORD=$(cat "$dir/password")"
    echo "URL=postgresql://postgres:$(cat "$dir/password")@127.0.0.1:$(cat "$dir/port")/postgres"
}

psql_on() {
    local dir=$1; shift
    PGPASSWORD=$(cat "$dir/password") psql -X -q -v ON_ERROR_STOP=1 -At -h 127.0.0.1 -p "$(cat "$dir/port")" -U postgres -d postgres "$@"
}

cmd=${1:-}; shift || true
case "$cmd" in
primary)
    dir=$1
    prepare_dir "$dir"
    python3 -c 'import secrets; print(secrets.token_hex(16))' >"$dir/password"
    install -o postgres -g postgres -m 600 "$dir/password" "$dir/pwfile"
    as_postgres "$bindir/initdb" -D "$dir/data" -U postgres --pwfile="$dir/pwfile" \
        --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    rm -f "$dir/pwfile"
    free_port >"$dir/port"
    start_server "$dir"
    print_url "$dir"
    ;;
standby)
    primary=$1 dir=$2 port=${3:-}
    name=standby_$(basename "$dir" | tr -c 'a-zA-Z0-9_\n' '_')
    if [ -n "$port" ]; then
        # A rebuild: the server once in DIR must be stopped; its data gives way to the new copy.
        [ ! -f "$dir/data/postmaster.pid" ] || die "a server is still running in $dir; stop it first"
        rm -rf "$dir/data"
    fi
    prepare_dir "$dir"
    cp "$primary/password" "$dir/password"
    if [ -n "$port" ]; then echo "$port" >"$dir/port"; else free_port >"$dir/port"; fi
    PGPASSWORD=$(cat "$primary/password") as_postgres env PGPASSWORD="$(cat "$primary/password")" \
        "$bindir/pg_basebackup" -h 127.0.0.1 -p "$(cat "$primary/port")" -U postgres -D "$dir/data" \
        -X stream -R -c fast -d "application_name=$name" >"$dir/basebackup.log" 2>&1 \
        || { cat "$dir/basebackup.log" >&2; die "pg_basebackup failed"; }
    start_server "$dir"
    for _ in $(seq 1 300); do
        [ "$(psql_on "$primary" -c "SELECT count(*) FROM pg_stat_replication WHERE application_name = '$name' AND state = 'streaming'")" = 1 ] && break
        sleep 0.1
    done
    psql_on "$primary" -c "ALTER SYSTEM SET synchronous_standby_names = '\"$name\"'" -c "SELECT pg_reload_conf()" >/dev/null
    for _ in $(seq 1 300); do
        [ "$(psql_on "$primary" -c "SELECT sync_state FROM pg_stat_replication WHERE application_name = '$name'")" = sync ] && break
        sleep 0.1
    done
    [ "$(psql_on "$primary" -c "SELECT sync_state FROM pg_stat_replication WHERE application_name = '$name'")" = sync ] \
        || die "the standby in $dir did not become synchronous"
    echo "NAME=$name"
    print_url "$dir"
    ;;
sync)
    dir=$1 names=$2
    psql_on "$dir" -c "ALTER SYSTEM SET synchronous_standby_names = '$names'" -c "SELECT pg_reload_conf()" >/dev/null
    ;;
promote)
    dir=$1
    as_postgres "$bindir/pg_ctl" -D "$dir/data" -w -t 60 promote >/dev/null
    # A promoted standby must not wait for a standby of its own.
    psql_on "$dir" -c "ALTER SYSTEM SET synchronous_standby_names = ''" -c "SELECT pg_reload_conf()" >/dev/null
    print_url "$dir"
    ;;
stop)
    dir=$1 mode=${2:-fast}
    [ -f "$dir/data/postmaster.pid" ] || exit 0
    as_postgres "$bindir/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null 2>&1 || true
    ;;
start)
    start_server "$1"
    print_url "$1"
    ;;
pids)
    dir=$1
    [ -f "$dir/data/postmaster.pid" ] || exit 0
    postmaster=$(head -n 1 "$dir/data/postmaster.pid")
    echo "$postmaster"
    pgrep -P "$postmaster" || true
    ;;
pgbouncer)
    dir=$1 pg=$2
    command -v pgbouncer >/dev/null 2>&1 || apt_install pgbouncer
    prepare_dir "$dir"
    cp "$pg/password" "$dir/password"
    free_port >"$dir/port"
    printf '"postgres" "%s"\n' "$(cat "$pg/password")" >"$dir/userlist.txt"
    cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$(cat "$pg/port")
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $(cat "$dir/port")
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 8
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
    chown postgres:postgres "$dir"/*
    chmod 600 "$dir/userlist.txt"
    # PgBouncer refuses to run as root.
    as_postgres pgbouncer -d "$dir/pgbouncer.ini" >/dev/null 2>&1 || { cat "$dir/pgbouncer.log" >&2; die "pgbouncer did not start"; }
    for _ in $(seq 1 100); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $(cat "$dir/port")), 0.2)" 2>/dev/null && break
        sleep 0.1
    done
    print_url "$dir"
    ;;
pgbouncer-stop)
    dir=$1
    [ -f "$dir/pgbouncer.pid" ] || exit 0
    pid=$(cat "$dir/pgbouncer.pid")
    kill "$pid" 2>/dev/null || exit 0
    # A child of a Swift test may have SIGTERM blocked: wait a little, then insist.
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    ;;
*)
    sed -n '2,22p' "$0" >&2
    exit 2
    ;;
esac
