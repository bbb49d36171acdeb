"""A loopback TCP proxy in front of an S3 server that misbehaves on demand, for timeout tests.

Modes (`proxy.mode`, changeable while it runs):
- "pass": forwards both ways untouched;
- "silent": accepts the connection, reads what the client sends, never answers;
- "slow": forwards, but holds each chunk of the server's answer `delay` seconds first;
- "cut": forwards the first `cut_after` bytes of the server's answer, then closes both sides.

`proxy.connections` counts the connections accepted: one per attempt botocore makes (the
client's connection pool is useless to it, since the proxy closes or spoils each one). The
proxy, never the test, holds the clock: a held connection is released when the proxy stops.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit

CHUNK = 16 * 1024


class FaultyProxy:
    def __init__(self, upstream: str, mode: str = "pass", *, delay: float = 0.0, cut_after: int = 0):
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.mode = mode
        self.delay = delay
        self.cut_after = cut_after
        self.connections = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> FaultyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        with self._lock:
            for sock in self._sockets:
                with suppress(OSError):
                    sock.close()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            with self._lock:
                self.connections += 1
                self._sockets.append(client)
            threading.Thread(target=self._serve, args=(client, self.mode), daemon=True).start()

    def _serve(self, client: socket.socket, mode: str) -> None:
        if mode == "silent":
            # Read (so the client's send never blocks) and say nothing, until the client gives
            # up and closes, or the proxy stops.
            with suppress(OSError):
                while client.recv(CHUNK):
                    pass
            return
        try:
            server = socket.create_connection(self._upstream)
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets.append(server)
        threading.Thread(target=self._pipe, args=(client, server, "pass"), daemon=True).start()
        self._pipe(server, client, mode)

    def _pipe(self, source: socket.socket, target: socket.socket, mode: str) -> None:
        sent = 0
        try:
            while chunk := source.recv(CHUNK):
                if mode == "slow" and self._stopped.wait(self.delay):
                    break
                if mode == "cut" and sent + len(chunk) >= self.cut_after:
                    target.sendall(chunk[: self.cut_after - sent])
                    break
                target.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        for sock in (source, target):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with suppress(OSError):
                sock.close()


@contextmanager
def faulty_proxy(upstream: str, mode: str = "pass", **options: float) -> Iterator[FaultyProxy]:
    proxy = FaultyProxy(upstream, mode, **options).start()  # type: ignore[arg-type]
    try:
        yield proxy
    finally:
        proxy.stop()
