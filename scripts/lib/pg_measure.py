"""What a run cost the database: CPU of every PostgreSQL process (backends that exited during the
run included), WAL written and transactions, between two snapshots.

  pg_measure.py snapshot --url URL --data DIR > before.json
  ... the run ...
  pg_measure.py snapshot --url URL --data DIR > after.json
  pg_measure.py diff before.json after.json --jobs N     -> {"cpu_us_per_job": ..., "wal_bytes_per_job": ..., "xacts_per_job": ...}

CPU: the postmaster's own time, plus the time of its children that exited (the kernel adds it to
the postmaster's cutime/cstime when it reaps them), plus the time of the children alive now.
Transactions: pg_stat_database's commits and rollbacks over all databases (statistics are flushed
first, and every client of the run has exited by the second snapshot).
"""
import json
import os
import subprocess
import sys

TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    # The command name is in parentheses and may hold spaces: split after it.
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(data_dir):
    with open(os.path.join(data_dir, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    fields = stat_fields(postmaster)
    # After ")": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    total = sum(int(fields[i]) for i in (11, 12, 13, 14))
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            child = stat_fields(int(entry))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        if int(child[1]) == postmaster:
            total += int(child[11]) + int(child[12])
    return total / TICKS


def psql(url, sql):
    return subprocess.run(["psql", "-qtAX", url, "-c", sql], check=True, capture_output=True, text=True).stdout.strip()


def snapshot(url, data_dir):
    psql(url, "SELECT pg_stat_force_next_flush()")
    lsn = psql(url, "SELECT pg_current_wal_lsn()")
    xacts = int(psql(url, "SELECT pg_stat_clear_snapshot(); SELECT sum(xact_commit + xact_rollback) FROM pg_stat_database")
                .splitlines()[-1])
    return {"cpu_seconds": cpu_seconds(data_dir), "lsn": lsn, "xacts": xacts, "url": url}


def diff(before, after, jobs):
    wal = int(psql(after["url"], f"SELECT pg_wal_lsn_diff('{after['lsn']}', '{before['lsn']}')::bigint"))
    return {
        "cpu_us_per_job": (after["cpu_seconds"] - before["cpu_seconds"]) * 1e6 / jobs,
        "wal_bytes_per_job": wal / jobs,
        "xacts_per_job": (after["xacts"] - before["xacts"]) / jobs,
    }


def main(argv):
    if argv[0] == "snapshot":
        options = dict(zip(argv[1::2], argv[2::2]))
        print(json.dumps(snapshot(options["--url"], options["--data"])))
    elif argv[0] == "diff":
        with open(argv[1]) as f:
            before = json.load(f)
        with open(argv[2]) as f:
            after = json.load(f)
        jobs = int(dict(zip(argv[3::2], argv[4::2]))["--jobs"])
        print(json.dumps(diff(before, after, jobs)))
    else:
        sys.exit(f"usage: {__doc__}")


if __name__ == "__main__":
    main(sys.argv[1:])
