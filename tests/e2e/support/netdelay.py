"""
A TCP relay on 127.0.0.1 that delivers every byte `delay` seconds after it
arrived, in each direction: a database that far away (a round trip costs
2 x delay), with no limit on throughput. For tests of what tokend does when
its database is healthy but not next door.

    with DelayRelay(pg.port, 0.008) as relay:
        url = relay.rewrite(t.app_url)     # the same URL through the relay
"""
import collections
import re
import socket
import threading
import time


class DelayRelay:
    def __init__(self, target_port, delay, target_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.delay = delay
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.stopping = threading.Event()
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
            self._pipe(client, server)
            self._pipe(server, client)

    def _pipe(self, src, dst):
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
