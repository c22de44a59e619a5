"""worker_cpus: where each worker thread runs (server/core/cpus.h).

A real `tokend serve` started with a chosen affinity mask (the CPUs it may run on, as taskset or a
cpuset would give it); the kernel's own record of each thread (/proc/<pid>/task/<tid>: its name and
Cpus_allowed_list) says where the workers were put. `auto` pins worker i to the i-th CPU only when
there are as many workers as CPUs and no other process shares the port, `off` never pins, a list pins
one CPU per worker in its order; a CPU outside the mask, a malformed list or one that does not name one
CPU per worker stop the start with a reason."""
import json
import os
from pathlib import Path

import pytest

from support.server import new_key
from support.util import TOKEND_BIN, wait_until

pytestmark = pytest.mark.binary

CPUS = sorted(os.sched_getaffinity(0))
needs_two = pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs to place workers on")


def threads(srv):
    """{thread name: [its allowed CPUs as text, one entry per thread of that name]}, once
    every worker is named and placed (workers.cpus is logged after the last: /readyz may
    answer from the first worker before the next ones are started, CI once saw only w0)."""
    wait_until(lambda: srv.log_lines("workers.cpus"), timeout=30, what="the workers placed")
    pid = srv.proc.pid
    out = {}
    for t in sorted(Path(f"/proc/{pid}/task").iterdir()):
        name = (t / "comm").read_text().strip()
        allowed = next(ln.split(":", 1)[1].strip() for ln in (t / "status").read_text().splitlines()
                       if ln.startswith("Cpus_allowed_list:"))
        out.setdefault(name, []).append(allowed)
    return out


def mask(cpus):
    """Cpus_allowed_list's text for a set of CPUs (ranges folded as the kernel writes them)."""
    cpus, parts, i = sorted(cpus), [], 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        parts.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(parts)


def placed(srv):
    """The log's account of the placement (workers.cpus)."""
    ev = srv.log_events("workers.cpus")
    assert len(ev) == 1, srv.stderr_text()[-3000:]
    return ev[0]["cpus"]


def serves(tokend, srv):
    """Tokens come out: over fresh connections, which the kernel spreads over the workers' listeners."""
    if not hasattr(tokend, "cpus_key"):
        tokend.account("cpus")
        tokend.seed_scopes("read")
        tokend.cpus_key = new_key(tokend, "cpus")
    key = tokend.cpus_key
    for _ in range(8):
        r = srv.token(key)
        assert r.status == 200, r.body


@needs_two
def test_auto_pins_one_worker_per_cpu_when_they_are_as_many(tokend, start_server):
    a, b = CPUS[0], CPUS[1]
    srv = start_server(tokend, workers=2, cpus={a, b})
    t = threads(srv)
    assert t["tokend-w0"] == [str(a)] and t["tokend-w1"] == [str(b)], t
    # Every other thread (main, database pool, LISTEN, memory trim) keeps the whole mask.
    others = [m for name, ms in t.items() if not name.startswith("tokend-w") for m in ms]
    assert others and all(m == mask({a, b}) for m in others), t
    assert {"tokend", "tokend-listen", "tokend-db0"} <= set(t), t
    assert placed(srv) == f"{a},{b}"
    serves(tokend, srv)


@needs_two
@pytest.mark.parametrize("workers", [1, 3])
def test_auto_leaves_the_workers_to_the_scheduler_when_counts_differ(tokend, start_server, workers):
    a, b = CPUS[0], CPUS[1]
    srv = start_server(tokend, workers=workers, cpus={a, b})
    t = threads(srv)
    assert [f"tokend-w{i}" in t for i in range(workers)] == [True] * workers, t
    assert all(m == mask({a, b}) for ms in t.values() for m in ms), t
    assert placed(srv).startswith(f"not pinned: {workers} worker{'s' if workers > 1 else ''} and 2 CPUs"), \
        placed(srv)
    serves(tokend, srv)


@needs_two
def test_off_never_pins(tokend, start_server):
    a, b = CPUS[0], CPUS[1]
    srv = start_server(tokend, workers=2, worker_cpus="off", cpus={a, b})
    t = threads(srv)
    assert t["tokend-w0"] == [mask({a, b})] and t["tokend-w1"] == [mask({a, b})], t
    assert placed(srv) == "not pinned (worker_cpus = off)"


@needs_two
def test_a_list_pins_in_its_order_and_wraps(tokend, start_server):
    a, b = CPUS[0], CPUS[1]
    srv = start_server(tokend, workers=2, worker_cpus=f"{b}, {a}", cpus={a, b})
    t = threads(srv)
    assert t["tokend-w0"] == [str(b)] and t["tokend-w1"] == [str(a)], t
    assert placed(srv) == f"{b},{a}"
    serves(tokend, srv)
    # One worker on the second CPU, the other threads free.
    srv = start_server(tokend, workers=1, worker_cpus=str(b), cpus={a, b})
    t = threads(srv)
    assert t["tokend-w0"] == [str(b)] and t["tokend"] == [mask({a, b})], t
    serves(tokend, srv)


@needs_two
def test_auto_does_not_pin_beside_another_process_on_the_port(tokend, start_server):
    """A rolling restart: the new tokend starts while the old one still listens. Pinned alike, the
    two would put both workers 0 on one CPU; a list is still obeyed."""
    a, b = CPUS[0], CPUS[1]
    first = start_server(tokend, workers=2, cpus={a, b})
    assert placed(first) == f"{a},{b}"
    second = start_server(tokend, port=first.port, workers=2, cpus={a, b}, wait=False)
    wait_until(lambda: second.log_lines("workers.cpus"), timeout=60, what="the second tokend's workers")
    assert placed(second).startswith("not pinned: another process listens on listen_port too"), \
        placed(second)
    t = threads(second)
    assert t["tokend-w0"] == [mask({a, b})] and t["tokend-w1"] == [mask({a, b})], t
    third = start_server(tokend, port=first.port, workers=2, worker_cpus=f"{a},{b}", cpus={a, b},
                         wait=False)
    wait_until(lambda: third.log_lines("workers.cpus"), timeout=60, what="the third tokend's workers")
    assert placed(third) == f"{a},{b}"


@needs_two
def test_a_cpu_outside_the_mask_stops_the_start(tokend, start_server):
    a, b = CPUS[0], CPUS[1]
    srv = start_server(tokend, workers=1, worker_cpus=str(b), cpus={a}, wait=False, check_exit=False)
    srv.proc.wait(timeout=60)
    err = srv.stderr_text()
    assert srv.proc.returncode == 1, err[-3000:]
    assert (f"tokend: worker_cpus: CPU {b} is not one this process may run on (its affinity mask, "
            f"from taskset, a cpuset or CPUAffinity=, allows {a})") in err, err[-3000:]
    assert not srv.log_lines("server.started")


@pytest.mark.parametrize("value, why", [
    ("0,0", "`0`: CPU 0 is listed twice"),
    ("0-", "`0-`: not a CPU number (0 to 1023), a range such as 4-7, auto or off"),
    ("1024", "`1024`: not a CPU number"),
    ("3-1", "`3-1`: the range runs backwards"),
    ("0,,1", "an empty entry between commas"),
    ("on", "`on`: not a CPU number"),
    ("0-2", "lists 3 CPUs for 2 workers (one CPU per worker, in order)"),
    ("0", "lists 1 CPU for 2 workers"),
])
def test_a_bad_list_is_refused_with_its_reason(tokend, value, why):
    for how in ("file", "env"):
        if how == "file":
            cfg = tokend.write_config([f"worker_cpus = {value}", "workers = 2",
                                       f"pepper_file = {tokend.pepper_file}"])
            r = tokend.run("config", config=cfg, check=1)
        else:
            cfg = tokend.write_config(["workers = 2", f"pepper_file = {tokend.pepper_file}"])
            r = tokend.run("config", config=cfg, check=1, env={"TOKEND_WORKER_CPUS": value})
        assert "worker_cpus: " + why in r.stderr, (how, r.stderr)


def test_config_shows_the_default_and_a_list(tokend):
    r = tokend.run("--json", "config", config=False, check=0)
    assert json.loads(r.stdout)["settings"]["worker_cpus"] == {
        "value": "auto", "source": "default", "env": "TOKEND_WORKER_CPUS"}
    cfg = tokend.write_config(["worker_cpus = 1,0", "workers = 2", f"pepper_file = {tokend.pepper_file}"])
    assert "worker_cpus = 1,0" in tokend.run("config", config=cfg, check=0).stdout


# -- failures no machine shows on demand: system calls refused (build/denysys, seccomp) -------------
DENYSYS = TOKEND_BIN.parent / "denysys"
needs_denysys = pytest.mark.skipif(not DENYSYS.is_file(), reason=f"{DENYSYS} not built")


@needs_two
@needs_denysys
def test_a_pin_that_fails_is_logged_and_tokend_serves_unpinned(tokend, start_server):
    a, b = CPUS[0], CPUS[1]
    srv = start_server(tokend, workers=2, cpus={a, b}, wrap=[str(DENYSYS), "sched_setaffinity"])
    failed = srv.log_events("workers.cpu_failed")
    assert [(e["worker"], e["cpu"]) for e in failed] == [("0", str(a)), ("1", str(b))], srv.stderr_text()[-3000:]
    assert all(e["level"] == "warning" and e["error"] == "Operation not permitted" for e in failed), failed
    # The placement that was planned stays in the start line, with each failure after it.
    assert placed(srv) == (f"{a},{b}; worker 0 not pinned: Operation not permitted; "
                           "worker 1 not pinned: Operation not permitted"), placed(srv)
    t = threads(srv)
    assert t["tokend-w0"] == [mask({a, b})] and t["tokend-w1"] == [mask({a, b})], t
    serves(tokend, srv)


@needs_denysys
def test_an_unreadable_affinity_pins_nothing_and_a_list_cannot_start(tokend, start_server, sanitized):
    if sanitized:
        # ASan's own thread setup reads each new thread's attributes, affinity included
        # (pthread_getattr_np), and aborts when it cannot: only the normal build can run this.
        pytest.skip("the sanitizer runtime needs sched_getaffinity")
    deny = [str(DENYSYS), "sched_getaffinity"]
    srv = start_server(tokend, workers=2, wrap=deny)
    assert placed(srv) == "not pinned: its CPU affinity cannot be read (Operation not permitted)", placed(srv)
    serves(tokend, srv)
    bad = start_server(tokend, workers=1, worker_cpus=str(CPUS[0]), wrap=deny, wait=False, check_exit=False)
    bad.proc.wait(timeout=60)
    err = bad.stderr_text()
    assert bad.proc.returncode == 1, err[-3000:]
    assert ("tokend: worker_cpus: the CPUs this process may run on are not known: its CPU affinity "
            "cannot be read (Operation not permitted)") in err, err[-3000:]
