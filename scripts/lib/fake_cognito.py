#!/usr/bin/env python3
"""A fake Amazon Cognito for scripts/chaos.sh: AdminResetUserPassword with random faults.

It answers ``POST /`` with ``X-Amz-Target: AWSCognitoIdentityProviderService.AdminResetUserPassword``
and a JSON body ``{"UserPoolId": ..., "Username": ...}`` the way Cognito's JSON 1.1 protocol does:
``200 {}`` with an ``x-amzn-RequestId`` header on success, an error body with ``__type`` and
``message`` otherwise. Signatures are not checked (the worker's signing is tested elsewhere).

Faults, each drawn per request with its own probability (``--p-*``):

* latency: 0-50 ms normally, 0.2 s to ``--slow-max`` seconds with ``--p-slow``;
* ``internal_error``: HTTP 500 ``InternalErrorException`` (transient: the worker retries);
* ``throttled``: HTTP 400 ``TooManyRequestsException`` (the worker backs off and cuts the shared
  rate), also whenever more than ``--throttle-above`` requests arrived in the last second;
* ``reset_before``: the connection is reset before the request is processed (no effect);
* ``reset_after``: the request is processed (the reset takes effect) and then the connection is
  reset, so the answer is lost: a legitimate reason for the worker to call again.

Every request is appended to a JSON-lines call log (``--log``), flushed line by line, with its
wall-clock start and end, pool, username, answer, HTTP status, request id, whether it took effect
(a 200, or a reset after processing), and the process id of the client that sent it (found from
the connection's socket inode in /proc, so calls can be matched to a worker's audit rows).
"""

import argparse
import http.server
import json
import os
import random
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from collections import deque

TARGET = "AWSCognitoIdentityProviderService.AdminResetUserPassword"


def socket_owner_pid(client_port, server_port):
    """The pid of the local process holding the client end of a loopback TCP connection, or None.

    /proc/net/tcp names the socket inode of each connection; the owning process has a
    ``socket:[inode]`` link among its fds. Only processes whose name starts with
    ``cognito-reset`` are searched (the workers), which keeps a lookup to a few milliseconds;
    it runs once per connection, and the worker keeps its connections alive.
    """
    local = "0100007F:%04X" % client_port
    remote = "0100007F:%04X" % server_port
    inode = None
    try:
        with open("/proc/net/tcp") as table:
            next(table)
            for line in table:
                fields = line.split()
                if fields[1] == local and fields[2] == remote:
                    inode = fields[9]
                    break
    except OSError:
        return None
    if not inode or inode == "0":
        return None
    wanted = "socket:[%s]" % inode
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % entry) as comm:
                if not comm.read().startswith("cognito-reset"):
                    continue
            fd_dir = "/proc/%s/fd" % entry
            for fd in os.listdir(fd_dir):
                try:
                    if os.readlink(os.path.join(fd_dir, fd)) == wanted:
                        return int(entry)
                except OSError:
                    continue
        except OSError:
            continue
    return None


class CallLog:
    """The JSON-lines call log, written under a lock and flushed per line (it is read at the end,
    and must hold every call even if the server is stopped abruptly)."""

    def __init__(self, path):
        self.file = open(path, "a", buffering=1)
        self.lock = threading.Lock()
        self.sequence = 0

    def write(self, record):
        with self.lock:
            self.sequence += 1
            record["seq"] = self.sequence
            self.file.write(json.dumps(record, separators=(",", ":")) + "\n")


class RecentRequests:
    """Arrival times of the last second's requests, for ``--throttle-above``."""

    def __init__(self):
        self.times = deque()
        self.lock = threading.Lock()

    def arrive(self, now):
        with self.lock:
            self.times.append(now)
            while self.times and self.times[0] < now - 1.0:
                self.times.popleft()
            return len(self.times)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the worker's HTTP client expects
    server_version = "FakeCognito/1.0"

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass  # the call log says everything; no line per request on stderr

    def setup(self):
        super().setup()
        self.peer_pid = None
        self.peer_looked_up = False

    def do_POST(self):
        options = self.server.options
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        started = time.time()
        if not self.peer_looked_up:
            self.peer_looked_up = True
            self.peer_pid = socket_owner_pid(self.client_address[1], self.server.server_address[1])
        record = {"t_start": started, "peer_port": self.client_address[1], "pid": self.peer_pid,
                  "pool": None, "username": None}
        if len(body) < length:
            # The client went away between the request's head and the end of its body (a worker
            # SIGKILLed mid-write). Cognito answers and acts on whole requests only, so this one
            # is logged as truncated, never taken for a call, and the connection is closed.
            self.close_connection = True
            record.update(t_end=time.time(), answer="truncated", status=None, request_id=None,
                          took_effect=False, body_bytes=len(body), content_length=length)
            self.server.log.write(record)
            return
        try:
            request = json.loads(body or b"{}")
            record["pool"] = request.get("UserPoolId")
            record["username"] = request.get("Username")
        except ValueError:
            request = None
        rng = self.server.rng
        with self.server.rng_lock:
            slow = rng.random() < options.p_slow
            latency = rng.uniform(0.2, options.slow_max) if slow else rng.uniform(0.0, 0.05)
            draw = rng.random()
        if self.headers.get("X-Amz-Target") != TARGET or request is None:
            self.answer(record, 400, "bad_request", {"__type": "UnknownOperationException", "message": "unknown operation"})
            return
        if record["pool"] not in self.server.pools:
            self.answer(record, 400, "unknown_pool",
                        {"__type": "ResourceNotFoundException", "message": "User pool %s does not exist." % record["pool"]})
            return
        # The faults, in one draw so their probabilities add up as configured.
        threshold = 0.0
        cases = [("reset_before", options.p_reset_before), ("internal_error", options.p_500),
                 ("throttled", options.p_throttle), ("reset_after", options.p_reset_after)]
        fault = None
        for name, probability in cases:
            threshold += probability
            if draw < threshold:
                fault = name
                break
        if fault == "reset_before":
            self.reset(record, "reset_before", took_effect=False)
            return
        time.sleep(latency)
        record["latency"] = round(latency, 4)
        over_rate = self.server.recent.arrive(time.time()) > options.throttle_above > 0
        if fault == "internal_error":
            self.answer(record, 500, "internal_error",
                        {"__type": "InternalErrorException", "message": "chaos: an internal error"})
        elif fault == "throttled" or over_rate:
            self.answer(record, 400, "throttled",
                        {"__type": "TooManyRequestsException", "message": "chaos: rate exceeded"})
        elif fault == "reset_after":
            # The reset takes effect, then the answer is lost with the connection.
            self.reset(record, "reset_after", took_effect=True)
        else:
            self.answer(record, 200, "ok", {})

    def answer(self, record, status, name, payload):
        request_id = str(uuid.uuid4())
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", request_id)
        if status != 200:
            self.send_header("x-amzn-ErrorType", payload["__type"] + ":")
        self.end_headers()
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            pass  # the client went away; the call still took effect if it was a 200
        record.update(t_end=time.time(), answer=name, status=status, request_id=request_id,
                      took_effect=(status == 200))
        self.server.log.write(record)

    def reset(self, record, name, took_effect):
        """Closes the connection with a TCP reset (SO_LINGER 0), answering nothing."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True
        record.update(t_end=time.time(), answer=name, status=None, request_id=None, took_effect=took_effect)
        self.server.log.write(record)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True, help="written (atomically) once listening")
    parser.add_argument("--log", required=True, help="the JSON-lines call log")
    parser.add_argument("--pools", required=True, help="comma-separated user pool ids that exist")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--p-slow", type=float, default=0.03)
    parser.add_argument("--slow-max", type=float, default=2.0)
    parser.add_argument("--p-500", type=float, default=0.03)
    parser.add_argument("--p-throttle", type=float, default=0.03)
    parser.add_argument("--p-reset-before", type=float, default=0.02)
    parser.add_argument("--p-reset-after", type=float, default=0.02)
    parser.add_argument("--throttle-above", type=float, default=0, help="requests/s; 0: never")
    options = parser.parse_args()

    server = Server(("127.0.0.1", options.port), Handler)
    server.options = options
    server.pools = set(options.pools.split(","))
    server.rng = random.Random(options.seed)
    server.rng_lock = threading.Lock()
    server.recent = RecentRequests()
    server.log = CallLog(options.log)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    temporary = options.port_file + ".tmp"
    with open(temporary, "w") as out:
        out.write("%d\n" % server.server_address[1])
    os.rename(temporary, options.port_file)
    server.serve_forever(poll_interval=0.2)
    sys.exit(0)


if __name__ == "__main__":
    main()
