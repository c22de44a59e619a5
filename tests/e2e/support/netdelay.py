"""
A TCP relay on 127.0.0.1 that delivers every byte `delay` seconds after it
arrived, in each direction: a database that far away (a round trip costs
2 x delay), with no limit on throughput; optionally with a narrow window
(rcvbuf). For tests of what tokend does when its database is healthy but not
next door.

    with DelayRelay(pg.port, 0.008) as relay:
        url = relay.rewrite(t.app_url)     # the same URL through the relay
"""
import collections
import re
import socket
import threading
import time


class DelayRelay:
    def __init__(self, target_port, delay, target_host="127.0.0.1", rcvbuf=None):
        """rcvbuf: the receive buffer of the client side's sockets (bytes; the
        kernel doubles it): a narrow TCP window, so that what the client sends
        beyond a few KB waits in its own socket (its sends would block)."""
        self.target = (target_host, target_port)
        self.delay = delay
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            # Before listen: accepted sockets inherit it, and their window is
            # scaled to it from the handshake on.
            self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            # And an Ethernet-sized segment (loopback's is 64 KB): the
            # client's send buffer is sized from it, as over a real network
            # (else it takes a megabyte or more at once).
            self.lsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1400)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.stopping = threading.Event()
        self.pause_until = 0.0
        self.socks = []
        self.lock = threading.Lock()
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def rewrite(self, url):
        """`url` (postgresql://...@127.0.0.1:PORT/...) pointed at the relay."""
        return re.sub(r"@127\.0\.0\.1:\d+/", f"@127.0.0.1:{self.port}/", url, count=1)

    def _accept(self):
        while not self.stopping.is_set():
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.settimeout(None)
            with self.lock:
                self.accepted += 1
                self.socks += [client, server]
            self._pipe(client, server, pausable=True)
            self._pipe(server, client)

    def pause_client(self, seconds):
        """Read nothing more from the client side for `seconds` once the next
        chunk has come: what the client sends meanwhile fills the relay's
        receive buffer, then the client's own socket (its sends would block)."""
        self.pause_until = time.monotonic() + seconds

    def _pipe(self, src, dst, pausable=False):
        """src -> dst, each chunk sent `delay` after it was read (order kept)."""
        q = collections.deque()
        cv = threading.Condition()

        def reader():
            while True:
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                with cv:
                    q.append((time.monotonic() + self.delay, data))
                    cv.notify()
                if not data:
                    return
                if pausable:
                    wait = self.pause_until - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)

        def writer():
            while True:
                with cv:
                    while not q:
                        cv.wait()
                    due, data = q.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    if not data:
                        dst.shutdown(socket.SHUT_WR)
                        return
                    dst.sendall(data)
                except OSError:
                    return

        threading.Thread(target=reader, daemon=True).start()
        threading.Thread(target=writer, daemon=True).start()

    def close(self):
        self.stopping.set()
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)    # wakes the accept
        except OSError:
            pass
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
