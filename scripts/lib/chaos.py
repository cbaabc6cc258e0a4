#!/usr/bin/env python3
"""The chaos run behind scripts/chaos.sh: the queue's delivery guarantee under compound faults.

In the style of Jepsen: a fleet of three `cognito-reset worker` processes and steady enqueuers run
against a private PostgreSQL primary with a synchronous streaming standby and a fake Cognito
(fake_cognito.py) that itself fails at random; faults are injected one at a time at random
moments; at the end the queue is allowed to settle and invariants are checked against the
database (jobs and the `attempts` audit) and the fake's own call log.

Everything runs in the folder given by --run-dir (made by chaos.sh); every process started here
is recorded in RUN_DIR/pids/ so that chaos.sh's trap can end it whatever happens to this script.
Progress goes to stderr as `==> ...` lines; the report goes to stdout and ends with the line
`chaos: <J> jobs, <C> calls, <F> faults, lost <L>, stuck <S>, duplicates <D>`.
Exit status: 0 when every invariant holds, 1 when one is broken (each printed with its evidence),
2 when the harness itself could not run.

Standard library only; PostgreSQL is reached with psql (and the cognito-reset CLI).
"""

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
PG_CLUSTER = os.path.join(HERE, "pg_cluster.sh")
FAKE_COGNITO = os.path.join(HERE, "fake_cognito.py")

REGION = "us-east-1"
POOLS = ["us-east-1_Chaos1", "us-east-1_Chaos2"]
WORKERS = 3
LEASE = 4.0          # --lease: short, so that faults make leases expire within the run
HEARTBEAT = 1.0      # --heartbeat: renewals and rescues every second
GRACE = 5.0          # --grace on SIGTERM
CONCURRENCY = 8
RATE_CEILING = 30    # the shared bucket's ceiling (requests/s)...
THROTTLE_ABOVE = 25  # ...which the fake pushes down: it throttles above this many requests/s
CLIENT_READ_TIMEOUT = 10.0  # HTTPTransport's read timeout: a slower answer is lost to the worker
STATEMENT_TIMEOUT = "2s"    # --statement-timeout (binaries that have it): shorter than a hang, so
                            # that the worker's deadlines (server 2 s, client 5 s later) are hit

# Tolerances of the checks (seconds). The fake, the workers and PostgreSQL share one clock.
EPS = 0.2            # a call's start at the fake vs. the worker's own start/end of the attempt
EPS_COMMIT = 0.25    # a finishing transaction's commit timestamp vs. the moment others see it
CANCEL_SLOT = 1.5    # a claim caught by a cancel may still call within its rate slot (< 1 s
                     # waits are not re-checked by the worker) plus EPS_COMMIT
TRUNCATED_AFTER_KILL = 2.0  # a SIGKILLed worker's sockets close as the kernel reaps it: at once
FAULT_AFTERMATH = LEASE + 2 * HEARTBEAT + 4.0  # how long after a fault a lease may still expire of it

FAULT_KINDS = ["worker_kill", "worker_stop", "pg_restart_fast", "pg_restart_immediate",
               "pg_terminate", "failover", "pg_hang"]
DB_FAULTS = {"pg_restart_fast", "pg_restart_immediate", "pg_terminate", "failover", "pg_hang"}

STOP = threading.Event()      # ends the whole run (signal)


def log(message):
    print("==> " + message, file=sys.stderr, flush=True)


class HarnessError(Exception):
    """The harness could not do its part (not a finding about the worker)."""


# ----------------------------------------------------------------------------------------------
# Processes

class Processes:
    """Every process this run starts, with a pid file under RUN_DIR/pids/ for chaos.sh's trap."""

    def __init__(self, run_dir):
        self.dir = os.path.join(run_dir, "pids")
        os.makedirs(self.dir, exist_ok=True)

    def started(self, name, proc):
        with open(os.path.join(self.dir, name + ".pid"), "w") as out:
            out.write("%d\n" % proc.pid)

    def ended(self, name):
        try:
            os.remove(os.path.join(self.dir, name + ".pid"))
        except FileNotFoundError:
            pass


def redacted(text):
    """Text without the passwords pg_cluster.sh prints (PASSWORD=..., postgres:...@)."""
    return re.sub(r"postgres:[^@\s]+@", "postgres:<redacted>@", re.sub(r"PASSWORD=\S+", "PASSWORD=<redacted>", text))


class ShortLived:
    """The short commands running right now (psql, pg_cluster.sh, the CLI), so that an
    interrupted run can end them as well (the long-lived processes have pid files)."""
    lock = threading.Lock()
    running = set()

    @classmethod
    def kill_all(cls):
        with cls.lock:
            for proc in cls.running:
                try:
                    proc.kill()
                except OSError:
                    pass


def run_command(args, timeout, env=None):
    """subprocess.run(args, capture_output=True, text=True, timeout=...), with the process
    registered in ShortLived while it runs; killed (and TimeoutExpired raised) after `timeout`."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    with ShortLived.lock:
        ShortLived.running.add(proc)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:  # the timeout, or the run being interrupted (SIGTERM)
        proc.kill()
        proc.communicate()
        raise
    finally:
        with ShortLived.lock:
            ShortLived.running.discard(proc)
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def run(args, timeout=120, env=None, check=True):
    """Runs a short command; returns the CompletedProcess (stdout and stderr as text)."""
    result = run_command(args, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise HarnessError("%s failed (%d): %s" % (" ".join(args[:3]), result.returncode,
                                                   redacted((result.stderr or result.stdout).strip()[-800:])))
    return result


# ----------------------------------------------------------------------------------------------
# PostgreSQL: a primary and a synchronous standby, whose roles swap on failover

class Cluster:
    """Two servers, `a` and `b` (folders RUN_DIR/pg-a and pg-b, fixed ports), made and changed by
    pg_cluster.sh. One is the primary; the other, when attached, its synchronous standby. Clients
    name both hosts with target_session_attrs=read-write, so they follow a failover by themselves.
    Only the fault thread changes the topology; `lock` keeps the final checks from racing it."""

    def __init__(self, run_dir):
        self.dirs = {"a": os.path.join(run_dir, "pg-a"), "b": os.path.join(run_dir, "pg-b")}
        self.primary, self.standby = "a", None
        self.lock = threading.RLock()
        self.password = None

    def port(self, node):
        with open(os.path.join(self.dirs[node], "port")) as source:
            return int(source.read().strip())

    def pg(self, *args, timeout=180):
        return run([PG_CLUSTER] + list(args), timeout=timeout).stdout

    def create(self):
        self.pg("primary", self.dirs["a"])
        with open(os.path.join(self.dirs["a"], "password")) as source:
            self.password = source.read().strip()
        # Commit timestamps tell exactly when a job's finishing transaction committed (the check
        # "no call after a cancel or a success"); a quick WAL retry makes a standby reconnect
        # within a second after its primary restarts (until then every commit waits for it).
        # ALTER SYSTEM lands in postgresql.auto.conf, which pg_basebackup copies to standbys.
        self.sql("ALTER SYSTEM SET track_commit_timestamp = on", node="a")
        self.sql("ALTER SYSTEM SET wal_retrieve_retry_interval = '500ms'", node="a")
        self.pg("stop", self.dirs["a"], "fast")
        self.pg("start", self.dirs["a"])
        self.attach_standby("b", fresh=True)

    def attach_standby(self, node, fresh=False):
        """Builds `node` as the synchronous standby of the primary (on its old port if not fresh)."""
        args = ["standby", self.dirs[self.primary], self.dirs[node]]
        if not fresh:
            args.append(str(self.port(node)))
        try:
            self.pg(*args, timeout=240)
        except (HarnessError, subprocess.TimeoutExpired):
            # A primary naming a standby that is not there makes every commit wait: drop the name.
            self.pg("stop", self.dirs[node], "immediate")
            self.pg("sync", self.dirs[self.primary], "")
            raise
        self.standby = node

    def env(self):
        """Environment for psql and the CLI: the password travels in PGPASSWORD, never in a URL.
        The caller's COGNITO_RESET_*, AWS_*, PG* and DATABASE_URL are left out: the CLI refuses
        COGNITO_RESET_* names it does not know (such as COGNITO_RESET_BIN), and the run's own
        settings must not be mixed with a profile, a PGHOST or a service file of the caller's."""
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("COGNITO_RESET_", "AWS_", "PG", "DATABASE_URL"))}
        return dict(base, PGPASSWORD=self.password, PGCONNECT_TIMEOUT="3")

    def url(self):
        """Both hosts, in a fixed order; libpq picks the one that accepts writes."""
        return ("postgresql://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres"
                "?target_session_attrs=read-write&connect_timeout=3" % (self.port("a"), self.port("b")))

    def node_url(self, node):
        return "postgresql://postgres@127.0.0.1:%d/postgres?connect_timeout=3" % self.port(node)

    def sql(self, statement, node=None, timeout=60, app="chaos-harness"):
        """Runs one statement (on `node`, else wherever writes go) and returns its rows as text."""
        url = self.node_url(node) if node else self.url()
        env = dict(self.env(), PGAPPNAME=app)
        result = run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", statement],
                     timeout=timeout, env=env)
        return result.stdout

    def pids(self, node):
        return [int(p) for p in self.pg("pids", self.dirs[node]).split()]

    def stop(self, node, mode):
        self.pg("stop", self.dirs[node], mode)

    def start(self, node):
        self.pg("start", self.dirs[node])

    def resume_all(self):
        """SIGCONT to every process of both servers (a hang must never outlive the run)."""
        for node in self.dirs:
            try:
                for pid in self.pids(node):
                    os.kill(pid, signal.SIGCONT)
            except (HarnessError, ProcessLookupError, subprocess.TimeoutExpired):
                pass

    def ensure_up(self):
        """The primary accepts writes again (it may have been left stopped by a failed step)."""
        for _ in range(3):
            try:
                self.sql("SELECT 1", timeout=20)
                return
            except (HarnessError, subprocess.TimeoutExpired):
                self.resume_all()
                try:
                    self.start(self.primary)
                except HarnessError:
                    pass
                time.sleep(1)
        self.sql("SELECT 1", timeout=20)

    def shutdown(self):
        self.resume_all()
        for node in self.dirs:
            try:
                self.stop(node, "immediate")
            except (HarnessError, subprocess.TimeoutExpired):
                pass


# ----------------------------------------------------------------------------------------------
# The fake Cognito and the workers

class FakeCognito:
    """fake_cognito.py on a free loopback port, with its call log in RUN_DIR/calls.jsonl."""

    def __init__(self, run_dir, processes, seed):
        self.dir = run_dir
        self.processes = processes
        self.seed = seed
        self.log_path = os.path.join(run_dir, "calls.jsonl")
        self.proc = None
        self.port = None

    def start(self):
        port_file = os.path.join(self.dir, "fake.port")
        with open(os.path.join(self.dir, "fake.log"), "w") as errors:
            self.proc = subprocess.Popen(
                [sys.executable, FAKE_COGNITO, "--port-file", port_file, "--log", self.log_path,
                 "--pools", ",".join(POOLS), "--seed", str(self.seed), "--throttle-above", str(THROTTLE_ABOVE)],
                stdout=subprocess.DEVNULL, stderr=errors)
        self.processes.started("fake", self.proc)
        for _ in range(100):
            if os.path.exists(port_file):
                with open(port_file) as source:
                    self.port = int(source.read())
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise HarnessError("the fake Cognito did not start (see fake.log)")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.processes.ended("fake")

    def calls(self):
        with open(self.log_path) as source:
            return [json.loads(line) for line in source if line.strip()]


class Fleet:
    """Three worker slots. A slot's process may be killed and restarted (a new pid each time);
    every process ever started is remembered with its slot, start and end, for the report."""

    def __init__(self, run_dir, binary, cluster, fake, processes):
        self.dir = os.path.join(run_dir, "workers")
        os.makedirs(self.dir, exist_ok=True)
        self.binary, self.cluster, self.fake, self.processes = binary, cluster, fake, processes
        self.slots = [None] * WORKERS
        self.history = {}   # pid -> {"slot", "generation", "started", "ended", "how", "log"}
        self.generation = Counter()
        self.lock = threading.RLock()
        self.expected_exit = set()  # pids we are stopping or killing ourselves
        self._options = None

    def env(self):
        return dict(self.cluster.env(), DATABASE_URL=self.cluster.url(),
                    AWS_ENDPOINT_URL="http://127.0.0.1:%d" % self.fake.port, AWS_REGION=REGION,
                    AWS_ACCESS_KEY_ID="AKIDCHAOS", AWS_SECRET_ACCESS_KEY="chaos-secret",
                    AWS_EC2_METADATA_DISABLED="true")

    @property
    def options(self):
        """Options only newer binaries have, used when `worker --help` lists them."""
        if self._options is None:
            help_text = run([self.binary, "worker", "--help"], env=self.cluster.env(), timeout=60, check=False).stdout
            self._options = ["--statement-timeout", STATEMENT_TIMEOUT] if "--statement-timeout" in help_text else []
        return self._options

    def start(self, slot):
        with self.lock:
            if STOP.is_set():
                return None  # an interrupted run starts nothing new
            self.generation[slot] += 1
            path = os.path.join(self.dir, "w%d.%d.log" % (slot + 1, self.generation[slot]))
            with open(path, "w") as out:
                proc = subprocess.Popen(
                    [self.binary, "worker", "--concurrency", str(CONCURRENCY), "--rate", str(RATE_CEILING),
                     "--lease", "%gs" % LEASE, "--heartbeat", "%gs" % HEARTBEAT, "--grace", "%gs" % GRACE,
                     "--poll", "1s"] + self.options,
                    stdout=out, stderr=subprocess.STDOUT, env=self.env())
            self.slots[slot] = proc
            self.history[proc.pid] = {"slot": slot + 1, "generation": self.generation[slot],
                                      "started": time.time(), "ended": None, "how": None, "log": path}
            self.processes.started("worker%d" % (slot + 1), proc)
            return proc

    def pid(self, slot):
        return self.slots[slot].pid

    def kill(self, slot):
        """SIGKILL; returns the pid killed."""
        with self.lock:
            proc = self.slots[slot]
            self.expected_exit.add(proc.pid)
            proc.kill()
            proc.wait()
            self.ended(proc, "SIGKILL (fault)")
            return proc.pid

    def ended(self, proc, how):
        entry = self.history[proc.pid]
        if entry["ended"] is None:
            entry["ended"] = time.time()
            entry["how"] = how
            entry["exit"] = proc.returncode

    def check_exits(self):
        """A worker that exited by itself is recorded (exit code, last log lines) and restarted,
        as systemd would (Restart=on-failure); the report lists it."""
        with self.lock:
            if STOP.is_set():
                return  # the run is ending: workers are being killed on purpose
            for slot, proc in enumerate(self.slots):
                if proc is None or proc.pid in self.expected_exit or proc.poll() is None:
                    continue
                self.ended(proc, "exited by itself with status %s" % proc.returncode)
                with open(self.history[proc.pid]["log"], errors="replace") as source:
                    self.history[proc.pid]["tail"] = source.readlines()[-6:]
                log("worker %d (pid %d) exited by itself with status %s; restarting it"
                    % (slot + 1, proc.pid, proc.returncode))
                self.start(slot)

    def terminate_all(self):
        """SIGTERM (after SIGCONT, in case one is stopped); SIGKILL after grace + 10 s."""
        with self.lock:
            procs = [p for p in self.slots if p is not None]
            for proc in procs:
                self.expected_exit.add(proc.pid)
                if proc.poll() is None:
                    os.kill(proc.pid, signal.SIGCONT)
                    proc.terminate()
            deadline = time.time() + GRACE + 10
            for proc in procs:
                try:
                    proc.wait(max(0.1, deadline - time.time()))
                    self.ended(proc, "SIGTERM (end of run), exit %d" % proc.returncode)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    self.ended(proc, "did not stop within grace + 10 s of SIGTERM: SIGKILLed")
            for slot in range(WORKERS):
                self.processes.ended("worker%d" % (slot + 1))

    def kill_all(self):
        """The end of an interrupted run: SIGKILL whatever still runs (after SIGCONT)."""
        with self.lock:
            STOP.set()
            self.expected_exit.update(proc.pid for proc in self.slots if proc is not None)
        for proc in self.slots:
            if proc is not None and proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGCONT)
                    proc.kill()
                    proc.wait(5)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass


# ----------------------------------------------------------------------------------------------
# Enqueuers: every way other systems and operators add and cancel work

class Ledger:
    """What the enqueuers asked for and what they were told.

    Each username is enqueued once, by one method. Its status: `ok` (a reply said it committed;
    `id` known for SQL, None for the CSV import) or `unknown` (no reply: the connection broke, the
    server refused the connection, or the command timed out; it may or may not have committed,
    which the checks settle by looking the username up in the database)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.entries = {}
        self.cancels = []   # {"job", "t0", "t1", "result": cancelled | none | unknown}
        self.sequence = Counter()
        self.errors = Counter()

    def names(self, method, count):
        with self.lock:
            names = []
            for _ in range(count):
                self.sequence[method] += 1
                names.append("%s-%06d" % (method, self.sequence[method]))
            return names

    def record(self, method, pool, names, status, ids=None, delayed=None):
        with self.lock:
            now = time.time()
            for name in names:
                self.entries[name] = {"method": method, "pool": pool, "status": status,
                                      "id": (ids or {}).get(name), "t": now,
                                      "delayed": bool(delayed and delayed.get(name))}

    def cancel_candidates(self, now):
        """Jobs enqueued in the last few seconds with a known id: (those due a few seconds later,
        which are still pending; those due at once, which are running or about to)."""
        with self.lock:
            recent = [e for e in self.entries.values() if e["id"] and now - e["t"] < 4]
            return [e for e in recent if e["delayed"]], [e for e in recent if not e["delayed"]]


class Enqueuers:
    """Four threads for the whole fault phase, at tens of jobs per second in total."""

    def __init__(self, run_dir, binary, cluster, ledger, rng):
        self.dir = os.path.join(run_dir, "imports")
        os.makedirs(self.dir, exist_ok=True)
        self.binary, self.cluster, self.ledger = binary, cluster, ledger
        self.stop = threading.Event()
        self.rngs = {name: random.Random(rng.random()) for name in ("sql", "fn", "csv", "cancel")}
        self.threads = []

    def start(self):
        for name, target in (("sql", self.plain_insert), ("fn", self.enqueue_reset),
                             ("csv", self.csv_import), ("cancel", self.cancel)):
            thread = threading.Thread(target=self.loop, args=(name, target), name="enqueue-" + name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(40)

    def loop(self, name, step):
        rng = self.rngs[name]
        while not self.stop.is_set() and not STOP.is_set():
            try:
                step(rng)
            except Exception as error:  # a harness bug must not silently end an enqueuer
                self.ledger.errors[name + ": " + type(error).__name__] += 1
                log("enqueuer %s: %s" % (name, error))
            self.stop.wait({"sql": 0.5, "fn": 0.5, "csv": 3.0, "cancel": 1.0}[name] * rng.uniform(0.7, 1.3))

    def psql(self, statement, app):
        """One statement in its own transaction; None if its outcome is unknown."""
        env = dict(self.cluster.env(), PGAPPNAME=app)
        try:
            result = run_command(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", self.cluster.url(),
                                  "-c", statement], timeout=20, env=env)
        except subprocess.TimeoutExpired:
            return None
        # psql exits 0 only after the server said ReadyForQuery, i.e. after the commit (and the
        # synchronous standby's acknowledgement). Any failure is treated as unknown: a connection
        # broken mid-commit may still have committed.
        return result.stdout if result.returncode == 0 else None

    def plain_insert(self, rng):
        """The SQL contract's plain INSERT ... RETURNING id, a few rows per statement."""
        pool = rng.choice(POOLS)
        names = self.ledger.names("sql", rng.randint(1, 4))
        values = ",".join("('%s', '%s')" % (pool, name) for name in names)
        out = self.psql("INSERT INTO cognito_reset.jobs (user_pool_id, username) VALUES %s RETURNING id, username"
                        % values, "chaos-sql")
        self.settle_reply("sql", pool, names, out, id_first=True)

    def enqueue_reset(self, rng):
        """`enqueue_reset(...)`, a quarter of them due a few seconds later (cancel targets)."""
        pool = rng.choice(POOLS)
        names = self.ledger.names("fn", rng.randint(1, 4))
        delays = {name: (rng.uniform(2, 4) if rng.random() < 0.25 else 0.0) for name in names}
        values = ",".join("('%s', '%s', %.2f)" % (pool, name, delays[name]) for name in names)
        out = self.psql("SELECT v.u, cognito_reset.enqueue_reset(user_pool_id => v.p, username => v.u, "
                        "run_at => now() + make_interval(secs => v.d)) FROM (VALUES %s) AS v(p, u, d)" % values,
                        "chaos-fn")
        self.settle_reply("fn", pool, names, out, id_first=False, delayed=delays)

    def settle_reply(self, method, pool, names, out, id_first, delayed=None):
        if out is None:
            self.ledger.record(method, pool, names, "unknown", delayed=delayed)
            return
        ids = {}
        for line in out.strip().splitlines():
            first, second = line.split("|")
            job_id, name = (first, second) if id_first else (second, first)
            ids[name] = int(job_id)
        if set(ids) != set(names):
            raise HarnessError("%s: the reply named %s, not %s" % (method, sorted(ids), names))
        self.ledger.record(method, pool, names, "ok", ids=ids, delayed=delayed)

    def csv_import(self, rng):
        """`cognito-reset import FILE --pool ID --json`: a small CSV file, one transaction."""
        pool = rng.choice(POOLS)
        names = self.ledger.names("csv", rng.randint(5, 10))
        path = os.path.join(self.dir, "%s.csv" % names[0])
        with open(path, "w") as out:
            out.write("username\n" + "".join(name + "\n" for name in names))
        env = dict(self.cluster.env(), DATABASE_URL=self.cluster.url(), PGAPPNAME="chaos-import",
                   COGNITO_RESET_LOG_LEVEL="error")
        try:
            result = run_command([self.binary, "import", path, "--pool", pool, "--json"], timeout=30, env=env)
        except subprocess.TimeoutExpired:
            self.ledger.record("csv", pool, names, "unknown")
            return
        if result.returncode == 0:
            report = json.loads(result.stdout)
            if report.get("accepted") != len(names):
                raise HarnessError("import of %s accepted %s of %d lines" % (path, report.get("accepted"), len(names)))
            self.ledger.record("csv", pool, names, "ok")
        elif result.returncode == 2:
            raise HarnessError("import refused %s: %s" % (path, result.stderr.strip()))
        else:
            self.ledger.record("csv", pool, names, "unknown")

    def cancel(self, rng):
        """`cognito-reset jobs cancel ID` of a job enqueued moments ago (often still pending)."""
        # Mostly pending jobs (the cancel then has something to do); sometimes one just enqueued
        # and due at once, which a worker may be calling right now (a cancel racing the call).
        delayed, due = self.ledger.cancel_candidates(time.time())
        candidates = (delayed if rng.random() < 0.7 else due) or delayed or due
        if not candidates:
            return
        job = rng.choice(candidates)["id"]
        env = dict(self.cluster.env(), DATABASE_URL=self.cluster.url(), PGAPPNAME="chaos-cancel",
                   COGNITO_RESET_LOG_LEVEL="error")
        started = time.time()
        try:
            result = run_command([self.binary, "jobs", "cancel", str(job)], timeout=30, env=env)
            if result.returncode == 0 and result.stdout.startswith("1 "):
                outcome = "cancelled"
            elif result.returncode == 0 and result.stdout.startswith("0 "):
                outcome = "none"
            else:
                outcome = "unknown"
        except subprocess.TimeoutExpired:
            outcome = "unknown"
        with self.ledger.lock:
            self.ledger.cancels.append({"job": job, "t0": started, "t1": time.time(), "result": outcome})


# ----------------------------------------------------------------------------------------------
# Faults

class Faults:
    """One fault at a time, a few seconds apart, in random order (from --seed): first every kind
    once, then kinds drawn at random until the fault phase ends. Each fault is recorded with its
    start and end (wall clock), the worker pid it hit, and details, for the duplicate causes."""

    def __init__(self, cluster, fleet, rng, deadline):
        self.cluster, self.fleet, self.rng, self.deadline = cluster, fleet, rng, deadline
        self.records = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="faults", daemon=True)
        self.error = None
        self.started = time.time()

    def start(self):
        self.started = time.time()
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join(300)

    def loop(self):
        order = list(FAULT_KINDS)
        self.rng.shuffle(order)
        try:
            self.stop.wait(self.rng.uniform(4, 6))  # let the fleet get going first
            while not self.stop.is_set() and not STOP.is_set() and time.time() < self.deadline:
                kind = order.pop(0) if order else self.rng.choice(FAULT_KINDS)
                self.inject(kind)
                self.fleet.check_exits()
                self.stop.wait(self.rng.uniform(2.5, 5))
                self.fleet.check_exits()
        except Exception as error:
            self.error = error
            log("fault injection failed: %s" % error)

    def inject(self, kind):
        self.fleet.check_exits()  # a crash must not be mistaken for the fault's own kill
        record = {"kind": kind, "t0": time.time(), "pid": None, "detail": ""}
        log("fault: %s" % kind.replace("_", " "))
        try:
            getattr(self, kind)(record)
        finally:
            record["t1"] = time.time()
            self.records.append(record)

    def claims_held(self, pid):
        """How many jobs the worker `pid` holds right now (running under its lease)."""
        try:
            return int(self.cluster.sql(
                "SELECT count(*) FROM cognito_reset.jobs_active WHERE state = 'running' "
                "AND split_part(locked_by, ':', 2) = '%d'" % pid, timeout=10).strip())
        except (HarnessError, subprocess.TimeoutExpired, ValueError):
            return None

    def await_claims(self, slot, record):
        """Waits (up to 5 s) for a moment when the worker holds claims, so that a kill or a stop
        hits calls in flight (a worker idle between calls would make the fault harmless)."""
        deadline = time.time() + 5
        pid = self.fleet.pid(slot)
        held = self.claims_held(pid)
        while not held and time.time() < deadline:
            time.sleep(0.05)
            held = self.claims_held(pid)
        record["claims"] = held
        record["t0"] = time.time()  # the fault starts now, not when we began to wait for it
        return pid

    def worker_kill(self, record):
        slot = self.rng.randrange(WORKERS)
        self.await_claims(slot, record)
        record["pid"] = self.fleet.kill(slot)
        down = self.rng.uniform(0.5, 2)
        record["detail"] = "worker %d (pid %d, holding %s claims) SIGKILLed, restarted %.1f s later" % (
            slot + 1, record["pid"], record["claims"], down)
        self.stop.wait(down)
        self.fleet.start(slot)

    def worker_stop(self, record):
        slot = self.rng.randrange(WORKERS)
        pid = record["pid"] = self.await_claims(slot, record)
        held = LEASE + self.rng.uniform(2, 4)
        record["detail"] = "worker %d (pid %d, holding %s claims) SIGSTOPped for %.1f s (lease %g s)" % (
            slot + 1, pid, record["claims"], held, LEASE)
        try:
            os.kill(pid, signal.SIGSTOP)
            time.sleep(held)
        except ProcessLookupError:
            record["detail"] += " (it had exited already)"
        finally:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def pg_restart_fast(self, record):
        self.pg_restart(record, "fast")

    def pg_restart_immediate(self, record):
        self.pg_restart(record, "immediate")

    def pg_restart(self, record, mode):
        with self.cluster.lock:
            node = self.cluster.primary
            self.cluster.stop(node, mode)
            down = self.rng.uniform(0.5, 2)
            time.sleep(down)
            self.cluster.start(node)
        record["detail"] = "primary %s stopped (%s), started %.1f s later" % (node, mode, down)

    def pg_terminate(self, record):
        with self.cluster.lock:
            count = self.cluster.sql(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'cognito-reset'", node=self.cluster.primary, timeout=30).strip()
        record["detail"] = "pg_terminate_backend of %s worker connections" % count

    def failover(self, record):
        """The primary dies (immediate stop); the synchronous standby is promoted; the old
        primary's folder is rebuilt as the new primary's synchronous standby on the same port,
        so that the next failover works (clients list both ports)."""
        with self.cluster.lock:
            if self.cluster.standby is None:
                # An earlier rebuild failed: try again before failing over to nothing.
                spare = "b" if self.cluster.primary == "a" else "a"
                try:
                    self.cluster.attach_standby(spare)
                except (HarnessError, subprocess.TimeoutExpired) as error:
                    record["skipped"] = True
                    record["detail"] = "skipped: no standby could be attached (%s)" % error
                    return
                record["t0"] = time.time()
            old, new = self.cluster.primary, self.cluster.standby
            self.cluster.stop(old, "immediate")
            self.cluster.pg("promote", self.cluster.dirs[new])  # also clears synchronous_standby_names
            self.cluster.primary, self.cluster.standby = new, None
            promoted = time.time()
            record["t_promoted"] = promoted
            record["detail"] = "primary %s killed, standby %s promoted after %.1f s; " % (old, new, promoted - record["t0"])
            try:
                self.cluster.attach_standby(old)
                record["detail"] += "%s rebuilt as its synchronous standby in %.1f s" % (old, time.time() - promoted)
            except (HarnessError, subprocess.TimeoutExpired) as error:
                # The run goes on with a lone primary (attach_standby cleared its standby name).
                record["detail"] += "rebuilding %s as a standby failed: %s" % (old, error)
                log("failover: rebuilding the standby failed; the primary runs alone for now")

    def pg_hang(self, record):
        """Every process of the primary SIGSTOPped (a hung server: connections open, no answers).
        The postmaster first, so that it forks no backend we would miss; then its children as
        they are at that moment (one may exit meanwhile)."""
        with self.cluster.lock:
            node = self.cluster.primary
            held = self.rng.uniform(5, 10)
            stopped = []
            try:
                postmaster = self.cluster.pids(node)[0]
                os.kill(postmaster, signal.SIGSTOP)
                stopped.append(postmaster)
                for pid in self.cluster.pids(node)[1:]:
                    try:
                        os.kill(pid, signal.SIGSTOP)
                        stopped.append(pid)
                    except ProcessLookupError:
                        pass
                record["detail"] = "%d processes of primary %s SIGSTOPped for %.1f s" % (len(stopped), node, held)
                time.sleep(held)
            finally:
                for pid in reversed(stopped):
                    try:
                        os.kill(pid, signal.SIGCONT)
                    except ProcessLookupError:
                        pass


# ----------------------------------------------------------------------------------------------
# The end of the run: settle, collect

def settle(cluster, fleet, binary, notes, problems):
    """Waits until no job is pending, retrying or running (the fleet still runs), pulling
    retries scheduled for later forward so the run stays bounded; then stops the fleet with
    SIGTERM and runs one `worker --drain`, which must exit 0 at once on an empty queue (anything
    else goes to `problems`; jobs left active show as stuck in the checks)."""
    deadline = time.time() + 120
    pulled = 0
    active = None
    while time.time() < deadline:
        fleet.check_exits()
        try:
            # Backoff after transient errors can reach minutes: bring those retries forward (an
            # operator's move; it changes when a job runs, not what it does).
            out = cluster.sql("WITH pulled AS (UPDATE cognito_reset.jobs SET run_at = now() "
                              "WHERE state = 'retrying' AND run_at > now() + interval '2 seconds' RETURNING 1) "
                              "SELECT (SELECT count(*) FROM pulled), "
                              "(SELECT count(*) FROM cognito_reset.jobs_active)", timeout=30)
            moved, active = (int(x) for x in out.strip().split("|"))
            pulled += moved
        except (HarnessError, subprocess.TimeoutExpired) as error:
            log("settle: %s" % error)
            active = None
        if active == 0:
            break
        time.sleep(1)
    if pulled:
        notes.append("settle: %d retrying jobs due later were brought forward to now" % pulled)
    if active != 0:
        notes.append("settle: %s jobs still active after 120 s" % active)
    log("settle: %s active jobs left; stopping the fleet (SIGTERM)" % active)
    fleet.terminate_all()
    started = time.time()
    with open(os.path.join(fleet.dir, "drain.log"), "w") as out:
        try:
            proc = subprocess.run([binary, "worker", "--drain", "--lease", "%gs" % LEASE, "--heartbeat",
                                   "%gs" % HEARTBEAT, "--grace", "%gs" % GRACE], stdout=out, stderr=subprocess.STDOUT,
                                  env=fleet.env(), timeout=60)
            drain = "exit %d after %.1f s" % (proc.returncode, time.time() - started)
            if proc.returncode != 0:
                problems.append("final `worker --drain`: %s (see workers/drain.log)" % drain)
        except subprocess.TimeoutExpired:
            drain = "did not exit within 60 s (killed)"
            problems.append("final `worker --drain` " + drain)
    log("final worker --drain: %s" % drain)


def collect(cluster):
    """Jobs and the audit as JSON, with each row's commit time (track_commit_timestamp)."""
    jobs = json.loads(cluster.sql(
        "SELECT coalesce(json_agg(json_build_object("
        "'id', id, 'pool', user_pool_id, 'username', username, 'state', state, 'attempt', attempt,"
        "'max_attempts', max_attempts, 'created', extract(epoch FROM created_at),"
        "'finished', extract(epoch FROM finished_at),"
        "'committed', extract(epoch FROM pg_xact_commit_timestamp(xmin)),"
        "'request_id', cognito_request_id, 'error', last_error_code, 'import_id', import_id,"
        "'locked_by', locked_by) ORDER BY id), '[]') FROM cognito_reset.jobs", node=cluster.primary, timeout=120))
    attempts = json.loads(cluster.sql(
        "SELECT coalesce(json_agg(json_build_object("
        "'id', id, 'job', job_id, 'attempt', attempt, 'worker', worker_id,"
        "'started', extract(epoch FROM started_at), 'finished', extract(epoch FROM finished_at),"
        "'committed', extract(epoch FROM pg_xact_commit_timestamp(xmin)),"
        "'outcome', outcome, 'error', error_code, 'request_id', request_id) ORDER BY id), '[]') "
        "FROM cognito_reset.attempts", node=cluster.primary, timeout=120))
    return jobs, attempts


# ----------------------------------------------------------------------------------------------
# The invariants

def started_work(log_path):
    """Whether a worker's log shows it got past start-up ("worker started")."""
    try:
        with open(log_path, errors="replace") as source:
            return any('msg="worker started"' in line for line in source)
    except OSError:
        return False


def worker_pid(worker_id):
    """`host:pid:suffix` -> pid."""
    try:
        return int(worker_id.rsplit(":", 2)[1])
    except (IndexError, ValueError):
        return None


class Analysis:
    """Checks the invariants; collects broken ones (`violations`, each with evidence) and the
    figures of the report. The definitions are in the docstrings of the check_* methods."""

    def __init__(self, jobs, attempts, calls, ledger, faults, fleet):
        self.jobs, self.attempts, self.calls = jobs, attempts, calls
        self.ledger, self.faults, self.fleet = ledger, faults, fleet
        self.violations = []  # (invariant, evidence)
        self.notes = []
        self.by_user = {}
        for job in jobs:
            key = (job["pool"], job["username"])
            if key in self.by_user:
                self.violate("harness", "two jobs for user %s: %d and %d" % (key, self.by_user[key]["id"], job["id"]))
            self.by_user[key] = job
        self.by_id = {job["id"]: job for job in jobs}
        self.rows = defaultdict(list)
        for row in attempts:
            row["pid"] = worker_pid(row["worker"])
            self.rows[row["job"]].append(row)
        self.job_calls = defaultdict(list)
        self.call_by_request = {}
        self.stray_calls = []
        self.truncated_calls = []
        for call in sorted(calls, key=lambda c: c["t_start"]):
            if call["answer"] == "truncated":
                self.truncated_calls.append(call)
                continue
            job = self.by_user.get((call["pool"], call["username"]))
            if job is None:
                self.stray_calls.append(call)
                continue
            call["job"] = job["id"]
            self.job_calls[job["id"]].append(call)
            if call.get("request_id"):
                self.call_by_request[call["request_id"]] = call
        # Claims whose lease expired: (job, worker, attempt) -> lease_expired rows.
        self.expired = defaultdict(list)
        for row in attempts:
            if row["outcome"] == "lease_expired":
                self.expired[(row["job"], row["worker"], row["attempt"])].append(row)
        self.duplicates = []
        self.tolerated_late = 0     # calls after a finish that were already in flight
        self.late_writes = 0        # outcome rows of rescued claims (zombie writes, audited only)
        self.covered = Counter()    # effective calls by what audits them

    def violate(self, invariant, evidence):
        self.violations.append((invariant, evidence))

    # -- helpers ------------------------------------------------------------------------------

    def rescue_of(self, row):
        """The lease_expired row of the claim that audit row `row` belongs to, if that claim was
        rescued; then `row`, if it is an outcome, was written late (by a zombie). A rescue of an
        earlier claim with the same numbers (a throttle gives its attempt back) is told apart by
        time: the rescued claim started (L.started is its claim time) before this call did."""
        if row["outcome"] == "lease_expired":
            return row
        for rescue in self.expired.get((row["job"], row["worker"], row["attempt"]), []):
            if row["started"] >= rescue["started"] - EPS:
                return rescue
        return None

    def claim_of(self, call):
        """The audit row of the claim a call was made for: the outcome row of the same worker
        (pid from the fake's socket lookup) whose [started, finished] holds the call's start, or
        else that worker's newest lease_expired row for the job whose claim began before it."""
        rows = [r for r in self.rows.get(call["job"], []) if call["pid"] is None or r["pid"] == call["pid"]]
        for row in rows:
            if row["outcome"] != "lease_expired" and row["started"] - EPS <= call["t_start"] <= row["finished"] + EPS:
                return row
        expired = [r for r in rows if r["outcome"] == "lease_expired" and r["started"] - EPS <= call["t_start"]]
        return expired[-1] if expired else None

    def fault_for(self, pid, start, end):
        """The fault that best explains a lease lost between `start` (claim) and `end` (rescue):
        one aimed at that worker's pid, else a database fault; first one that was going on
        during that span, else the latest one whose aftermath (a lease and heartbeats) reaches
        into it."""
        candidates = [f for f in self.faults if f["t0"] <= end + EPS and f["t1"] + FAULT_AFTERMATH >= start]

        def rank(fault):
            aimed = fault["kind"] in ("worker_kill", "worker_stop") and fault["pid"] == pid
            during = fault["t1"] >= start
            return (aimed, during, fault["t0"])
        relevant = [f for f in candidates if f["kind"] in DB_FAULTS
                    or (f["kind"] in ("worker_kill", "worker_stop") and f["pid"] == pid)]
        return max(relevant, key=rank) if relevant else None

    def describe_lease_loss(self, rescue):
        fault = self.fault_for(rescue["pid"], rescue["started"], rescue["finished"])
        if fault is None:
            return None
        text = {"worker_kill": "worker pid %s SIGKILLed mid-call" % rescue["pid"],
                "worker_stop": "worker pid %s SIGSTOPped past its lease (zombie)" % rescue["pid"],
                "pg_restart_fast": "lease expired during a PostgreSQL restart (fast)",
                "pg_restart_immediate": "lease expired during a PostgreSQL restart (immediate)",
                "pg_terminate": "lease expired after pg_terminate_backend of the workers",
                "failover": "lease expired during a failover",
                "pg_hang": "lease expired while the primary hung (SIGSTOP)"}[fault["kind"]]
        return text

    # -- invariants ----------------------------------------------------------------------------

    def check_lost_and_stuck(self):
        """lost: a job whose enqueue committed (a reply said so, or, when the reply was lost, the
        job is in the database at the end) that vanished, changed id, or never reached a final
        state. stuck: any job not final at the end. Both must be 0."""
        final = {"succeeded", "failed", "cancelled"}
        self.committed = {}
        self.unknown = Counter()
        for name, entry in self.ledger.entries.items():
            job = self.by_user.get((entry["pool"], name))
            if entry["status"] == "unknown":
                self.unknown["committed" if job else "not committed"] += 1
                if job is None:
                    continue
            elif entry["status"] != "ok":
                continue
            self.committed[name] = entry
            if job is None:
                self.violate("lost", "%s (%s, enqueue acknowledged%s) is not in the database"
                             % (name, entry["method"], ", id %d" % entry["id"] if entry["id"] else ""))
            elif entry["id"] and entry["id"] != job["id"]:
                self.violate("lost", "%s was acknowledged as job %d but the database has job %d"
                             % (name, entry["id"], job["id"]))
        self.lost = sum(1 for inv, _ in self.violations if inv == "lost")
        for name, entry in self.committed.items():
            job = self.by_user.get((entry["pool"], name))
            if job and job["state"] not in final:
                self.lost += 1
        stuck = [job for job in self.jobs if job["state"] not in final]
        self.stuck = len(stuck)
        for job in stuck:
            self.violate("stuck", "job %d (%s) is %s at the end (attempt %d, locked by %s)"
                         % (job["id"], job["username"], job["state"], job["attempt"], job["locked_by"]))
        for job in self.jobs:
            if job["username"] not in self.ledger.entries:
                self.violate("harness", "job %d (%s) was never enqueued by this run" % (job["id"], job["username"]))

    def check_no_call_after_finish(self):
        """No call may start after the job's success or cancel committed (T: the commit timestamp
        of the transaction that finished it, plus EPS_COMMIT for the moment others see it).
        - After a success, any such call is made for another claim of the job, which must have
          lost its lease (two claims are never valid at once): a worker whose lease had expired
          went on calling (a paused worker resuming, or the Cognito client's quick retries of an
          attempt the worker no longer held). No tolerance beyond EPS_COMMIT: a call that was
          already in flight started before T.
        - After a cancel, the claim the cancel caught (not rescued, its attempt number is the
          job's last) is tolerated: the worker cannot know of the cancel without asking, and asks
          only after a rate-slot wait longer than 1 s, so its attempt must start within
          CANCEL_SLOT of T; that attempt's quick retries are tolerated with it."""
        for job in self.jobs:
            if job["state"] not in ("succeeded", "cancelled"):
                continue
            finished = job["committed"] or job["finished"]
            for call in self.job_calls.get(job["id"], []):
                if call["t_start"] <= finished + EPS_COMMIT:
                    continue
                row = self.claim_of(call)
                rescue = self.rescue_of(row) if row else None
                began = row["started"] if row and row["outcome"] != "lease_expired" else call["t_start"]
                if (job["state"] == "cancelled" and row is not None and rescue is None
                        and row["attempt"] == job["attempt"] and began <= finished + CANCEL_SLOT):
                    self.tolerated_late += 1
                    continue
                if rescue is not None:
                    claim = "its claim (attempt %d, claimed %.2f s before) had been rescued %.2f s before the call (lease_expired row %d)" % (
                        rescue["attempt"], call["t_start"] - rescue["started"], call["t_start"] - rescue["finished"], rescue["id"])
                elif row is not None:
                    claim = "its claim (attempt %d, audit row %d, started %.2f s before the call) was never rescued" % (
                        row["attempt"], row["id"], call["t_start"] - began)
                else:
                    claim = "no audit row of that worker covers it"
                self.violate("call after finish",
                             "job %d (%s): call #%d (%s) by pid %s started %.2f s after the job's %s committed (by another claim); %s" % (
                                 job["id"], job["username"], call["seq"], call["answer"], call["pid"],
                                 call["t_start"] - finished, "success" if job["state"] == "succeeded" else "cancel", claim))

    def check_outcomes_not_overwritten(self):
        """No outcome written over a newer claim, a rescue or a cancel. The row that wrote a
        job's final state (for a success, the audit row with the job's cognito_request_id; for a
        failure, the newest row of the job's last attempt with its last error) must belong to the
        job's newest claim: same attempt number as the job, and not a claim that had been rescued
        (a zombie's late write is audited, but must not move the job). A job our cancel command
        reported cancelled must still be cancelled."""
        for job in self.jobs:
            rows = self.rows.get(job["id"], [])
            if job["state"] == "succeeded":
                writers = [r for r in rows if r["outcome"] == "succeeded" and r["request_id"] == job["request_id"]]
                what = "success (request id %s)" % job["request_id"]
            elif job["state"] == "failed":
                writers = [r for r in rows if r["error"] == job["error"] and r["attempt"] == job["attempt"]]
                what = "failure %s" % job["error"]
            else:
                continue
            if not writers:
                self.violate("outcome over a newer claim",
                             "job %d: its final %s matches no audit row of attempt %d" % (job["id"], what, job["attempt"]))
                continue
            writer = writers[-1]
            if writer["attempt"] != job["attempt"]:
                self.violate("outcome over a newer claim",
                             "job %d: final %s was written by attempt %d (audit row %d) but the job's newest claim is attempt %d"
                             % (job["id"], what, writer["attempt"], writer["id"], job["attempt"]))
            rescue = self.rescue_of(writer) if writer["outcome"] != "lease_expired" else None
            if rescue is not None:
                self.violate("outcome over a newer claim",
                             "job %d: final %s was written by a claim of %s that had been rescued (audit rows %d, %d)"
                             % (job["id"], what, writer["worker"], writer["id"], rescue["id"]))
        self.late_writes = sum(1 for row in self.attempts
                               if row["outcome"] != "lease_expired" and self.rescue_of(row) is not None)
        for cancel in self.ledger.cancels:
            job = self.by_id.get(cancel["job"])
            if cancel["result"] == "cancelled" and job and job["state"] != "cancelled":
                self.violate("outcome over a cancel", "job %d was cancelled by `jobs cancel` at %.2f but ended %s"
                             % (job["id"], cancel["t1"], job["state"]))

    def check_audit_matches_calls(self):
        """Every audit row of a real call outcome matches a call at the fake (the same request
        id, job, worker pid and a consistent answer; for a network error without request id, a
        reset call of that job by that worker within the row's time span), no call has two
        rows (an outcome batch written again after a lost reply), and every call that
        took effect at the fake has an audit row of its worker for that job spanning it, or
        belongs to a claim that shows in the audit as lease_expired (its worker was killed or
        stopped, or lost its lease, before it could record the outcome)."""
        answers = {"succeeded": {"ok"}, "throttled": {"throttled"}, "transient_error": {"internal_error"}}
        # One call, one audit row: an outcome batch sent again after its reply was lost (the
        # commit may have happened) must not append the same call twice.
        seen = Counter((r["job"], r["worker"], r["attempt"], r["started"]) for r in self.attempts
                       if r["outcome"] != "lease_expired")
        for (job_id, worker, attempt, started), count in seen.items():
            if count > 1:
                self.violate("call audited twice", "job %d: %d audit rows for the call of %s, attempt %d, started %.3f"
                             % (job_id, count, worker, attempt, started))
        for row in self.attempts:
            if row["outcome"] == "lease_expired":
                continue
            job = self.by_id.get(row["job"])
            if row["request_id"]:
                call = self.call_by_request.get(row["request_id"])
                problem = None
                if call is None:
                    problem = "no call at the fake has request id %s" % row["request_id"]
                elif call["job"] != row["job"]:
                    problem = "request id %s belongs to a call for job %s" % (row["request_id"], call["job"])
                elif call["pid"] is not None and call["pid"] != row["pid"]:
                    problem = "request id %s was a call by pid %s, not %s" % (row["request_id"], call["pid"], row["pid"])
                elif call["answer"] not in answers.get(row["outcome"], set()):
                    problem = "outcome %s but the fake answered %s" % (row["outcome"], call["answer"])
                if problem:
                    self.violate("audit without its call", "audit row %d (job %d, %s %s): %s"
                                 % (row["id"], row["job"], row["outcome"], row["error"], problem))
            elif row["outcome"] == "transient_error" and row["error"] in ("NetworkError", "Timeout"):
                wanted = {"NetworkError": ("reset_before", "reset_after"), "Timeout": ("ok", "internal_error", "throttled")}
                found = [c for c in self.job_calls.get(row["job"], [])
                         if (c["pid"] is None or c["pid"] == row["pid"])
                         and row["started"] - EPS <= c["t_start"] <= row["finished"] + EPS
                         and c["answer"] in wanted[row["error"]]]
                if not found:
                    self.violate("audit without its call", "audit row %d (job %d, %s): no %s call of that worker in %.2f-%.2f"
                                 % (row["id"], row["job"], row["error"], "/".join(wanted[row["error"]]),
                                    row["started"], row["finished"]))
            else:
                self.violate("unexpected outcome", "audit row %d (job %d): %s %s (the fake never answers so)"
                             % (row["id"], row["job"], row["outcome"], row["error"]))
            if job is None:
                self.violate("audit without its call", "audit row %d names job %d, which does not exist" % (row["id"], row["job"]))
        for call in self.stray_calls:
            self.violate("call without a job", "call #%d for %s/%s: no such job" % (call["seq"], call["pool"], call["username"]))
        for call in self.truncated_calls:
            # A request cut off before its body ended never reached Cognito as a call. Only a
            # worker SIGKILLed mid-write explains one: its pid (when the fake learnt it before the
            # process died) and a body's end within TRUNCATED_AFTER_KILL of the kill.
            killers = [f for f in self.faults if f["kind"] == "worker_kill"
                       and call["pid"] in (None, f["pid"])
                       and f["t0"] - EPS <= call["t_start"] <= f["t0"] + TRUNCATED_AFTER_KILL]
            if not killers:
                self.violate("call without a job", "call #%d by pid %s: request cut off after %d of %d body bytes, "
                             "and no worker was killed then" % (call["seq"], call["pid"], call.get("body_bytes", 0),
                                                                call.get("content_length", 0)))
        for job_id, calls in self.job_calls.items():
            job = self.by_id[job_id]
            for call in calls:
                if not call["took_effect"]:
                    continue
                row = self.claim_of(call)
                if row is not None:
                    self.covered["its lease_expired row" if row["outcome"] == "lease_expired" else "its outcome row"] += 1
                    continue
                killed = [f for f in self.faults if f["kind"] == "worker_kill" and f["pid"] == call["pid"]
                          and f["t0"] >= call["t_start"]]
                if job["state"] == "cancelled" and killed:
                    # The cancel freed the job (no lease left to expire), then its worker died
                    # before writing the outcome: nothing can audit this call.
                    self.notes.append("call #%d for cancelled job %d: its worker was SIGKILLed before auditing it"
                                      % (call["seq"], job_id))
                    self.covered["none (cancelled, worker killed)"] += 1
                    continue
                self.violate("call without audit",
                             "call #%d (job %d, %s, pid %s, at %.2f) took effect but has no audit row or lease_expired row"
                             % (call["seq"], job_id, call["answer"], call["pid"], call["t_start"]))

    def check_duplicates(self):
        """A duplicate is a call that took effect for a job that already had one. Each needs a
        cause: the previous effective call's answer was lost (reset after processing, or slower
        than the client's timeout), or the previous call's claim lost its lease (its worker was
        SIGKILLed or SIGSTOPped, or the database failed over, hung, restarted or dropped the
        connections, so that another worker rescued and called again), or the duplicate itself
        was made by a claim whose lease had expired (a zombie). Anything else is unexplained."""
        for job_id, calls in self.job_calls.items():
            effective = [c for c in calls if c["took_effect"]]
            for previous, call in zip(effective, effective[1:]):
                cause = self.duplicate_cause(previous, call)
                self.duplicates.append((job_id, call, previous, cause))
                if cause is None:
                    row_p, row_c = self.claim_of(previous), self.claim_of(call)
                    self.violate("unexplained duplicate",
                                 "job %d: call #%d (pid %s, %s) after call #%d (pid %s, %s, audit row %s %s; this call's row %s %s)"
                                 % (job_id, call["seq"], call["pid"], call["answer"], previous["seq"], previous["pid"],
                                    previous["answer"], row_p and row_p["id"], row_p and row_p["outcome"],
                                    row_c and row_c["id"], row_c and row_c["outcome"]))

    def duplicate_cause(self, previous, call):
        if previous["answer"] == "reset_after":
            return "answer lost: connection reset after processing"
        if previous["t_end"] - previous["t_start"] >= CLIENT_READ_TIMEOUT:
            return "answer lost: slower than the client's timeout"
        for which, subject in (("previous call's claim", previous), ("this call's own claim", call)):
            row = self.claim_of(subject)
            rescue = self.rescue_of(row) if row else None
            if rescue is not None:
                reason = self.describe_lease_loss(rescue)
                if reason:
                    return reason if which.startswith("previous") else "zombie call: " + reason
                return None
        return None

    def run(self):
        self.check_lost_and_stuck()
        self.check_no_call_after_finish()
        self.check_outcomes_not_overwritten()
        self.check_audit_matches_calls()
        self.check_duplicates()


# ----------------------------------------------------------------------------------------------
# The report

def table(title, rows, out):
    print("\n" + title, file=out)
    width = max([len(str(k)) for k, _ in rows] + [10])
    for key, value in rows:
        print("  %-*s  %s" % (width, key, value), file=out)


def report(analysis, ledger, faults, fleet, notes, seed, minutes, origin, out=sys.stdout):
    print("chaos run: seed %d, fault phase %g min, %d workers (lease %gs, heartbeat %gs)"
          % (seed, minutes, WORKERS, LEASE, HEARTBEAT), file=out)
    kinds = Counter(f["kind"] for f in faults if not f.get("skipped"))
    table("faults", [(kind, kinds.get(kind, 0)) for kind in FAULT_KINDS] + [("total", sum(kinds.values()))], out)
    for fault in faults:
        print("    %6.1f s  %-21s %s" % (fault["t0"] - origin, fault["kind"], fault["detail"]), file=out)

    methods = Counter(e["method"] for e in analysis.committed.values())
    states = Counter(j["state"] for j in analysis.jobs)
    cancels = Counter(c["result"] for c in ledger.cancels)
    table("jobs", [
        ("enqueued: plain INSERT", methods.get("sql", 0)),
        ("enqueued: enqueue_reset()", methods.get("fn", 0)),
        ("enqueued: CSV import", methods.get("csv", 0)),
        ("enqueue replies lost", "%d (committed %d, not committed %d)" % (
            sum(analysis.unknown.values()), analysis.unknown["committed"], analysis.unknown["not committed"])),
        ("jobs in the database", len(analysis.jobs)),
        ("succeeded", states.get("succeeded", 0)),
        ("failed", states.get("failed", 0)),
        ("cancelled", states.get("cancelled", 0)),
        ("cancel commands", "%d (cancelled %d, already finished %d, reply lost %d)" % (
            len(ledger.cancels), cancels["cancelled"], cancels["none"], cancels["unknown"])),
        ("audit rows", "%d (%s)" % (len(analysis.attempts), ", ".join(
            "%s %d" % kv for kv in sorted(Counter(r["outcome"] for r in analysis.attempts).items())))),
    ], out)

    answers = Counter(c["answer"] for c in analysis.calls)
    table("calls at the fake Cognito", [
        ("total", len(analysis.calls)),
        ("took effect", sum(1 for c in analysis.calls if c["took_effect"])),
    ] + [("answer " + k, v) for k, v in sorted(answers.items())], out)

    causes = Counter(cause or "UNEXPLAINED" for _, _, _, cause in analysis.duplicates)
    table("duplicate calls (at-least-once) by cause", sorted(causes.items()) or [("none", "")], out)
    for job_id, call, previous, cause in analysis.duplicates:
        print("    job %-6d call #%-6d after #%-6d %s" % (job_id, call["seq"], previous["seq"], cause or "UNEXPLAINED"),
              file=out)

    broken = Counter(invariant for invariant, _ in analysis.violations)

    def verdict(*names, detail=""):
        count = sum(broken.get(name, 0) for name in names)
        return ("BROKEN (%d)" % count if count else "ok") + ("  " + detail if detail else "")

    table("invariants", [
        ("nothing lost", verdict("lost", detail="lost %d" % analysis.lost)),
        ("nothing stuck", verdict("stuck", detail="stuck %d" % analysis.stuck)),
        ("no call after a cancel/success committed", verdict(
            "call after finish", detail="%d later calls already in flight tolerated" % analysis.tolerated_late)),
        ("no outcome over a newer claim or a cancel", verdict(
            "outcome over a newer claim", "outcome over a cancel",
            detail="%d late writes of rescued claims audited, none applied" % analysis.late_writes)),
        ("every audited call happened, once", verdict("audit without its call", "unexpected outcome",
                                                      "call audited twice")),
        ("every effective call audited", verdict("call without audit", "call without a job", detail=", ".join(
            "%d by %s" % (n, k) for k, n in sorted(analysis.covered.items())))),
        ("every duplicate explained", verdict("unexplained duplicate")),
        ("no worker exited by itself", verdict("worker exited by itself")),
        ("a final `worker --drain` exits 0", verdict("final drain")),
        ("harness", verdict("harness")),
    ], out)

    workers = []
    for pid, entry in sorted(fleet.history.items(), key=lambda kv: kv[1]["started"]):
        workers.append(("worker %d.%d pid %d" % (entry["slot"], entry["generation"], pid), entry["how"] or "running"))
    table("worker processes", workers, out)
    if notes or analysis.notes:
        table("notes", [("-", n) for n in notes + analysis.notes], out)
    if analysis.violations:
        print("\nBROKEN INVARIANTS", file=out)
        for invariant, evidence in analysis.violations:
            print("  %s: %s" % (invariant, evidence), file=out)
    print("", file=out)
    print("chaos: %d jobs, %d calls, %d faults, lost %d, stuck %d, duplicates %d" % (
        len(analysis.jobs), len(analysis.calls), sum(kinds.values()), analysis.lost, analysis.stuck,
        len(analysis.duplicates)),
        file=out, flush=True)


# ----------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description="chaos run (see scripts/chaos.sh)")
    parser.add_argument("--bin", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seed", type=int, default=None)
    options = parser.parse_args()
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(1, 2**31)
    log("seed %d (repeat this schedule with --seed %d)" % (seed, seed))
    rng = random.Random(seed)

    def on_signal(signum, _frame):
        STOP.set()
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)

    processes = Processes(options.run_dir)
    cluster = Cluster(options.run_dir)
    fake = FakeCognito(options.run_dir, processes, rng.randrange(2**31))
    fleet = Fleet(options.run_dir, options.bin, cluster, fake, processes)
    ledger = Ledger()
    notes = []
    try:
        log("PostgreSQL primary + synchronous standby (%s)" % options.run_dir)
        cluster.create()
        env = dict(cluster.env(), DATABASE_URL=cluster.url(), COGNITO_RESET_LOG_LEVEL="error")
        run([options.bin, "migrate"], env=env, timeout=300)
        run([options.bin, "rate", "set", str(RATE_CEILING), "--key", "cognito:" + REGION, "--burst", "5",
             "--floor", "5"], env=dict(env, AWS_REGION=REGION), timeout=60)
        fake.start()
        log("fake Cognito on 127.0.0.1:%d (call log %s)" % (fake.port, fake.log_path))
        for slot in range(WORKERS):
            fleet.start(slot)
        log("%d workers (%s); enqueuers and faults for %g min" % (
            WORKERS, " ".join(fleet.options) or "no --statement-timeout in this binary", options.minutes))
        enqueuers = Enqueuers(options.run_dir, options.bin, cluster, ledger, rng)
        faults = Faults(cluster, fleet, random.Random(rng.random()), time.time() + options.minutes * 60)
        enqueuers.start()
        faults.start()
        end = time.time() + options.minutes * 60
        while time.time() < end and not STOP.is_set():
            time.sleep(min(5, max(0.1, end - time.time())))
            fleet.check_exits()
        log("fault phase over; finishing the fault in progress and the enqueuers")
        faults.finish()
        enqueuers.finish()
        if faults.error:
            raise HarnessError("fault injection failed: %s" % faults.error)
        cluster.resume_all()
        cluster.ensure_up()
        log("settling: waiting for every job to finish")
        problems = []
        settle(cluster, fleet, options.bin, notes, problems)
        jobs, attempts = collect(cluster)
        fake.stop()
        calls = fake.calls()
        # The evidence, for a look after a failed run (chaos.sh keeps the folder then).
        with open(os.path.join(options.run_dir, "evidence.json"), "w") as out:
            json.dump({"seed": seed, "jobs": jobs, "attempts": attempts, "faults": faults.records,
                       "enqueued": ledger.entries, "cancels": ledger.cancels,
                       "workers": {str(pid): {k: v for k, v in e.items() if k != "tail"} for pid, e in fleet.history.items()}},
                      out)
        missing = [k for k in FAULT_KINDS if k not in {f["kind"] for f in faults.records if not f.get("skipped")}]
        analysis = Analysis(jobs, attempts, calls, ledger, faults.records, fleet)
        analysis.run()
        for problem in problems:
            analysis.violate("final drain", problem)
        if missing and options.minutes >= 2:
            analysis.violate("harness", "fault kinds never injected: %s" % ", ".join(missing))
        elif missing:
            notes.append("fault kinds not injected in this short run: %s" % ", ".join(missing))
        if ledger.errors:
            analysis.violate("harness", "enqueuer errors: %s" % dict(ledger.errors))
        # The worker rides these faults out (README, "Outages"): a worker that exits
        # by itself (a crash, or giving up on the database) is a finding, with its last log lines.
        for pid, entry in fleet.history.items():
            if entry["how"] and "by itself" in entry["how"]:
                if entry["exit"] == 3 and not started_work(entry["log"]):
                    # Exit 3 before it started work: the database (or AWS) was unreachable at
                    # start-up, through a failover or a hang. That is the documented start-up
                    # behaviour (fail before READY=1; systemd's Restart=on-failure starts it
                    # again, as this harness did), not a worker giving up on a fault it was in.
                    notes.append("worker %d.%d (pid %d) exited 3 at start-up (database unreachable) and was restarted"
                                 % (entry["slot"], entry["generation"], pid))
                    continue
                analysis.violate("worker exited by itself", "worker %d.%d (pid %d) %s; last log lines (%s):\n      %s" % (
                    entry["slot"], entry["generation"], pid, entry["how"], os.path.relpath(entry["log"], options.run_dir),
                    "      ".join(line[:400] for line in entry.get("tail", []))))
        report(analysis, ledger, faults.records, fleet, notes, seed, options.minutes, faults.started)
        if analysis.violations:
            for invariant, evidence in analysis.violations[:20]:
                log("BROKEN %s: %s" % (invariant, evidence))
            return 1
        return 0
    except HarnessError as error:
        log("harness error: %s" % error)
        return 2
    finally:
        STOP.set()
        ShortLived.kill_all()
        fleet.kill_all()
        fake.stop()
        cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
