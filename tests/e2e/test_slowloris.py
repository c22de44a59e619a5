"""Issue 6, point 2: slow and idle clients do not hurt normal ones, and are cut off.

1,000 connections from 127.0.0.2-5 hold partial requests open (headers trickled a
byte at a time, or nothing at all) while a normal client on 127.0.0.1 asks for
tokens over keep-alive; its p99 must stay under 100 ms. Bounded in time; loopback only.
"""
import socket
import threading
import time

import pytest

from support.http import metric
from support.server import new_key

SLOW = 1000


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


@pytest.mark.slow
def test_normal_clients_fast_with_1000_slow_connections(tokend, start_server):
    tokend.account("acme", "--key-limit", "5")
    tokend.scopes("read")
    k = new_key(tokend, "acme")
    srv = start_server(tokend, header_timeout="5s", body_timeout="5s", idle_timeout="5s")
    # Warm up: the key in the cache.
    assert srv.token(k).status == 200

    socks = []
    stop = threading.Event()
    try:
        for i in range(SLOW):
            s = socket.socket()
            s.bind((f"127.0.0.{2 + i % 4}", 0))   # 250 each: under max_connections_per_address
            s.settimeout(5)
            s.connect(("127.0.0.1", srv.port))
            if i % 2 == 0:   # half send a request line and then trickle headers
                s.sendall(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)

        def trickle():
            n = 0
            while not stop.is_set():
                for s in socks[0:len(socks):2]:
                    try:
                        s.send(b"X")
                    except OSError:
                        pass
                n += 1
                stop.wait(0.5)

        t = threading.Thread(target=trickle)
        t.start()
        lat = []
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        body = "grant_type=client_credentials"
        from support.http import basic
        h = {"Content-Type": "application/x-www-form-urlencoded",
             "Authorization": basic(k["client_id"], k["client_secret"])}
        deadline = time.monotonic() + 3
        statuses = set()
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            c.request("POST", "/oauth2/token", body=body, headers=h)
            r = c.getresponse()
            r.read()
            lat.append((time.perf_counter() - t0) * 1000)
            statuses.add(r.status)
        c.close()
        # The slow connections are cut at their header deadline (5 s after their
        # accept), trickling or not: no byte moves a deadline.
        t_cut = time.monotonic()
        cut = 0
        while time.monotonic() - t_cut < 10:
            cut = metric(srv.metrics(), "tokend_connections_timed_out_total", phase="header")
            if cut >= SLOW:
                break
            time.sleep(0.2)
        stop.set()
        t.join()
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        print(f"\nslowloris: {SLOW} slow connections open; normal client {len(lat)} requests, "
              f"p50 {p50:.2f} ms, p99 {p99:.2f} ms; {int(cut)} slow connections cut at the header deadline")
        assert cut >= SLOW, f"only {cut} of {SLOW} slow connections were closed at their header deadline"
        assert statuses == {200}
        assert p99 < 100, f"p99 {p99:.1f} ms with {SLOW} slow connections"
        # The server is still healthy and answers metrics.
        assert metric(srv.metrics(), "tokend_tokens_issued_total") >= len(lat)
    finally:
        stop.set()
        for s in socks:
            s.close()
