"""
Observability that fits the ecosystem (issue 17, point 3): request ids
(X-Request-Id taken when sane, generated otherwise, echoed, in every log line
of the request), W3C traceparent logged, JSON logs with typed values and the
version in the start line, /metrics with tokend_build_info, the standard
process_* series and the exposition format's Content-Type, optional
per-account token counters, the optional ops listener, and systemd readiness
through $NOTIFY_SOCKET.
"""
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from support.http import http_request, metric, parse_metrics
from support.registry import remember_token
from support.server import new_key
from support.util import free_port, wait_until

pytestmark = pytest.mark.binary

GENERATED_ID = re.compile(r"^[0-9a-f]{16}-\d+-\d+$")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


class NS:
    def __init__(self, **kw):
        self.__dict__.update(kw)


@pytest.fixture(scope="module")
def env(module_tokend, module_start_server):
    t = module_tokend
    t.account("acme", "--key-limit", "50")
    t.account("globex", "--key-limit", "50")
    t.scopes("read", "write")
    srv = module_start_server(t)
    key = new_key(t, "acme", "obs", "read")
    return NS(t=t, srv=srv, key=key, start=module_start_server)


def lines_with(srv, needle):
    return [l for l in srv.stderr_text().splitlines() if needle in l]


# ===========================================================================
# Request ids
# ===========================================================================
def test_sane_request_id_is_echoed_and_in_every_line_of_the_request(env):
    srv = env.srv
    rid = "f47ac10b-58cc-4372-a567-0e02b2c3d479"
    # A refused request writes two lines: token.refused and http.request.
    bad = dict(env.key, client_secret=env.key["client_secret"][:-2] + "xx")
    r = srv.token(bad, headers={"X-Request-Id": rid})
    assert r.status in (400, 401), r
    assert r.headers.get("x-request-id") == rid, r
    mine = wait_until(lambda: len(lines_with(srv, rid)) >= 2 and lines_with(srv, rid), timeout=5,
                      what="the request's log lines")
    events = {re.search(r"event=(\S+)", l).group(1) for l in mine}
    assert "http.request" in events and len(events) >= 2, mine
    for l in mine:
        assert f'req="{rid}"' in l, l
    # A successful token request and a 404 carry it too.
    r = srv.token(env.key, headers={"X-Request-Id": "ok-1"})
    assert r.status == 200 and r.headers.get("x-request-id") == "ok-1", r
    remember_token(r.json()["access_token"])
    r = srv.get("/nope", headers={"X-Request-Id": "nf-1"})
    assert r.status == 404 and r.headers.get("x-request-id") == "nf-1", r


def test_request_id_generated_when_absent(env):
    ids = []
    for _ in range(3):
        r = env.srv.get("/.well-known/jwks.json")
        assert r.status == 200
        ids.append(r.headers.get("x-request-id"))
    assert all(i and GENERATED_ID.match(i) for i in ids), ids
    assert len(set(ids)) == 3, ids
    assert len({i.split("-")[0] for i in ids}) == 1, "one process prefix"
    for i in ids:
        wait_until(lambda: lines_with(env.srv, f'req="{i}"'), timeout=5, what=f"a log line for {i}")


@pytest.mark.parametrize("value", [
    "x" * 65,                                  # too long
    "has space",
    'quote"d',
    "semi;colon",
    "caf\u00e9",
    "under_score",
])
def test_insane_request_id_replaced_never_logged(env, value):
    srv = env.srv
    raw = value.encode("utf-8").decode("latin-1")   # http.client sends latin-1
    r = srv.get("/.well-known/jwks.json", headers={"X-Request-Id": raw})
    assert r.status == 200, r
    got = r.headers.get("x-request-id")
    assert got and GENERATED_ID.match(got), (value, got)
    wait_until(lambda: lines_with(srv, got), timeout=5, what="the access line")
    assert not lines_with(srv, value), f"the refused id {value!r} reached the log"


def test_secret_as_request_id_is_never_logged(env):
    """A client that puts its secret in X-Request-Id: replaced, not logged."""
    secret = env.key["client_secret"]
    r = env.srv.token(env.key, headers={"X-Request-Id": secret})
    assert r.status == 200
    remember_token(r.json()["access_token"])
    assert GENERATED_ID.match(r.headers.get("x-request-id", "")), r
    assert secret not in env.srv.stderr_text()


def test_two_request_ids_are_none(env):
    """Two X-Request-Id fields: neither is taken."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", env.srv.port, timeout=5)
    c.putrequest("GET", "/.well-known/jwks.json")
    c.putheader("X-Request-Id", "one")
    c.putheader("X-Request-Id", "two")
    c.endheaders()
    resp = c.getresponse()
    resp.read()
    c.close()
    assert resp.status == 200
    assert GENERATED_ID.match(resp.getheader("x-request-id") or ""), resp.getheaders()


# ===========================================================================
# traceparent
# ===========================================================================
def test_traceparent_logged(env):
    srv = env.srv
    tp = f"00-{TRACE}-{PARENT}-01"
    r = srv.get("/.well-known/jwks.json", headers={"traceparent": tp, "X-Request-Id": "tp-ok"})
    assert r.status == 200
    line = wait_until(lambda: lines_with(srv, 'req="tp-ok"'), timeout=5, what="the access line")[0]
    assert f'trace_id="{TRACE}"' in line and f'parent_id="{PARENT}"' in line, line


@pytest.mark.parametrize("tp", [
    f"00-{'0' * 32}-{PARENT}-01",                 # zero trace id
    f"00-{TRACE}-{'0' * 16}-01",                  # zero parent id
    f"ff-{TRACE}-{PARENT}-01",                    # version ff
    f"00-{TRACE.upper()}-{PARENT}-01",            # upper case
    f"00-{TRACE}-{PARENT}-01-extra",              # version 00 with more
    "garbage",
])
def test_invalid_traceparent_ignored(env, tp):
    srv = env.srv
    rid = f"tp-bad-{abs(hash(tp)) % 10**8}"
    r = srv.get("/.well-known/jwks.json", headers={"traceparent": tp, "X-Request-Id": rid})
    assert r.status == 200
    line = wait_until(lambda: lines_with(srv, f'req="{rid}"'), timeout=5, what="the access line")[0]
    assert "trace_id=" not in line and "parent_id=" not in line, line


# ===========================================================================
# JSON logs: typed values, the version
# ===========================================================================
def test_json_logs_typed_values_and_version(env, tokend_bin):
    srv = env.start(env.t, log_format="json")
    rid = "json-typed-1"
    r = srv.token(env.key, headers={"X-Request-Id": rid, "traceparent": f"00-{TRACE}-{PARENT}-00"})
    assert r.status == 200
    remember_token(r.json()["access_token"])
    events = [json.loads(l) for l in srv.stderr_text().splitlines() if l.strip()]
    started = [e for e in events if e["event"] == "server.started"]
    version = subprocess.run([str(tokend_bin), "--version"], capture_output=True, text=True).stdout.split()[-1]
    assert started and started[0]["version"] == version, started
    assert type(started[0]["port"]) is int and started[0]["port"] == srv.port, started
    assert type(started[0]["workers"]) is int, started
    acc = wait_until(lambda: [e for e in (json.loads(l) for l in srv.stderr_text().splitlines() if l.strip())
                              if e.get("req") == rid], timeout=5, what="the access line")
    line = [e for e in acc if e["event"] == "http.request"][0]
    assert type(line["status"]) is int and line["status"] == 200, line
    assert type(line["us"]) is int and line["us"] >= 0, line
    assert line["trace_id"] == TRACE and line["parent_id"] == PARENT, line
    assert type(line["path"]) is str and type(line["client_id"]) is str


# ===========================================================================
# /metrics
# ===========================================================================
def test_metrics_content_type_build_info_process(env, tokend_bin):
    r = env.srv.get("/metrics")
    assert r.status == 200
    assert r.headers.get("content-type") == "text/plain; version=0.0.4; charset=utf-8", r.headers
    m = parse_metrics(r.body.decode())
    version = subprocess.run([str(tokend_bin), "--version"], capture_output=True, text=True).stdout.split()[-1]
    assert metric(m, "tokend_build_info", version=version) == 1
    types = m["__types__"]
    for name, typ in (("process_cpu_seconds_total", "counter"), ("process_resident_memory_bytes", "gauge"),
                      ("process_virtual_memory_bytes", "gauge"), ("process_start_time_seconds", "gauge"),
                      ("process_open_fds", "gauge"), ("process_max_fds", "gauge"),
                      ("tokend_memory_trims_total", "counter"), ("tokend_memory_trim_seconds_total", "counter"),
                      ("tokend_db_key_spills_total", "counter"),
                      ("tokend_db_key_spill_threshold_seconds", "gauge")):
        assert types.get(name) == typ, (name, types.get(name))
    pid = env.srv.proc.pid
    # Against what the kernel says about the same process.
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    assert abs(metric(m, "process_open_fds") - fds) <= 8, (metric(m, "process_open_fds"), fds)
    with open(f"/proc/{pid}/status") as f:
        status = dict(l.split(":", 1) for l in f if ":" in l)
    rss = int(status["VmRSS"].split()[0]) * 1024
    assert 0.5 * rss <= metric(m, "process_resident_memory_bytes") <= 2 * rss
    assert abs(metric(m, "process_start_time_seconds") - time.time()) < 3600
    assert metric(m, "process_start_time_seconds") <= time.time() + 1
    assert metric(m, "process_virtual_memory_bytes") >= metric(m, "process_resident_memory_bytes")
    assert metric(m, "process_max_fds") >= fds
    assert metric(m, "process_cpu_seconds_total") >= 0
    # Off by default: no per-account series.
    assert "tokend_account_tokens_issued_total" not in r.body.decode()


def test_metrics_per_account(env):
    srv = env.start(env.t, metrics_per_account="yes")
    k2 = new_key(env.t, "globex", "obs2", "read")
    for key, n in ((env.key, 3), (k2, 2)):
        for _ in range(n):
            r = srv.token(key)
            assert r.status == 200
            remember_token(r.json()["access_token"])
    assert srv.token(dict(k2, client_secret=k2["client_secret"][:-2] + "xx")).status in (400, 401)
    m = srv.metrics()
    assert m["__types__"].get("tokend_account_tokens_issued_total") == "counter"
    assert metric(m, "tokend_account_tokens_issued_total", account="acme") == 3
    assert metric(m, "tokend_account_tokens_issued_total", account="globex") == 2
    text = http_request(srv.port, "GET", "/metrics").body.decode()
    assert k2["client_id"] not in text and k2["client_secret"] not in text


def test_bad_metrics_per_account_value_refused(env):
    r = env.t.run("--config", str(env.t.write_config(env.t.config_lines + ["metrics_per_account = maybe"])),
                  "config", config=False)
    assert r.returncode != 0 and "metrics_per_account" in r.stderr, r.stderr


# ===========================================================================
# The ops listener
# ===========================================================================
def test_ops_listener_takes_the_ops_paths_off_the_main_listener(env):
    ops = free_port()
    srv = env.start(env.t, ops_listen_port=ops)
    for path in ("/metrics", "/healthz", "/readyz"):
        r = http_request(ops, "GET", path)
        assert r.status == 200, (path, r)
        assert r.headers.get("x-request-id"), r
        r = srv.get(path)
        assert r.status == 404, (path, r)     # no longer on the main listener
    assert http_request(ops, "HEAD", "/metrics").status == 200
    # Only the ops paths there: not the OAuth endpoints, nor the admin API.
    for path in ("/oauth2/token", "/.well-known/jwks.json", "/admin/v1/keys"):
        assert http_request(ops, "GET", path).status == 404, path
    assert http_request(ops, "POST", "/metrics", body="").status in (405, 501), "no bodies there"
    # The main listener still serves the OAuth endpoints.
    r = srv.token(env.key)
    assert r.status == 200
    remember_token(r.json()["access_token"])
    assert srv.get("/.well-known/jwks.json").status == 200
    # and the ops listener counts them.
    m = parse_metrics(http_request(ops, "GET", "/metrics").body.decode())
    assert metric(m, "tokend_http_requests_total", endpoint="token", code="200") >= 1
    assert srv.log_events("server.ops_listener"), srv.stderr_text()[-2000:]


def test_ops_listener_port_taken_refuses_to_start(env):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        srv = env.start(env.t, ops_listen_port=busy.getsockname()[1], wait=False, check_exit=False)
        srv.proc.wait(30)
        assert srv.proc.returncode != 0
        assert str(busy.getsockname()[1]) in srv.stderr_text(), srv.stderr_text()[-2000:]
    finally:
        busy.close()


# ===========================================================================
# systemd readiness (Type=notify) through $NOTIFY_SOCKET
# ===========================================================================
def test_sd_notify_ready_reloading_stopping(env, tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    try:
        srv = env.start(env.t, wait=False, env={"NOTIFY_SOCKET": path})
        msg = sock.recv(4096).decode()
        fields = dict(l.split("=", 1) for l in msg.split("\n"))
        assert fields.get("READY") == "1", msg
        assert fields.get("MAINPID") == str(srv.proc.pid), msg
        # READY comes once every listener serves: the port answers at once.
        assert http_request(srv.port, "GET", "/healthz").status == 200
        os.kill(srv.proc.pid, signal.SIGHUP)
        msg = sock.recv(4096).decode()
        assert msg.startswith("RELOADING=1\nMONOTONIC_USEC="), msg
        assert int(msg.split("MONOTONIC_USEC=")[1]) > 0
        assert sock.recv(4096).decode() == "READY=1"
        srv.stop()
        assert sock.recv(4096).decode() == "STOPPING=1"
    finally:
        sock.close()


def test_sd_notify_abstract_socket(env):
    name = f"tokend-e2e-notify-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(30)
    try:
        env.start(env.t, wait=False, env={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096).decode().startswith("READY=1\n")
    finally:
        sock.close()


def test_sd_notify_bad_socket_is_not_fatal(env, tmp_path):
    srv = env.start(env.t, env={"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert srv.get("/healthz").status == 200
    # READY=1 goes out from the main thread once every listener is served: /readyz
    # can answer before it is sent (and its failure logged).
    wait_until(lambda: srv.log_events("server.notify_failed"), timeout=10,
               what="server.notify_failed in the log")
