"""A loopback TCP proxy in front of an S3 server that misbehaves on demand, for timeout tests.

Each connection is forwarded untouched until the client sends a chunk starting with
`trigger` (b"": at once; b"GET ": at its first GET), then it is *faulted* for good:
- "silent": what the client sends is swallowed and nothing is ever answered;
- "slow": each chunk of the server's answer is held `delay` seconds before it is sent;
- "cut": the first `cut_after` bytes of the answer are sent, then both sides are closed;
- "error": the request is not passed on; the proxy answers it with S3's 500 InternalError, as
  a server that has lost an object's data does, and closes the connection.

`faults` counts the connections faulted: one per attempt botocore makes, since it never
reuses a connection that timed out or was cut. The proxy, never the test, holds the clock:
what it holds is let go when it stops.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress
from urllib.parse import urlsplit

CHUNK = 16 * 1024

# Timeouts short enough for tests that wait for them: the proxy holds a connection, botocore
# gives up after these and tries twice in all.
SHORT_TIMEOUTS = {
    "KEYED_STORAGE_CONNECT_TIMEOUT": "1",
    "KEYED_STORAGE_READ_TIMEOUT": "1",
    "KEYED_STORAGE_TRANSFER_TIMEOUT": "1.5",
    "KEYED_STORAGE_MAX_ATTEMPTS": "2",
}

_ERROR_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)
INTERNAL_ERROR = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_ERROR_BODY), _ERROR_BODY)
)


class FaultyProxy:
    def __init__(
        self, upstream: str, mode: str, *, trigger: bytes = b"", delay: float = 0.0, cut_after: int = 0
    ):
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.mode = mode
        self.trigger = trigger
        self.delay = delay
        self.cut_after = cut_after
        self.faults = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> FaultyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        with self._lock:
            for sock in self._sockets:
                _close(sock)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            try:
                server = socket.create_connection(self._upstream)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._sockets += [client, server]
            faulted = threading.Event()
            threading.Thread(target=self._requests, args=(client, server, faulted), daemon=True).start()
            threading.Thread(target=self._answers, args=(server, client, faulted), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket, faulted: threading.Event) -> None:
        with suppress(OSError):
            while chunk := client.recv(CHUNK):
                if not faulted.is_set() and chunk.startswith(self.trigger):
                    with self._lock:
                        self.faults += 1
                    faulted.set()  # before the request goes on, so its answer is faulted
                if faulted.is_set() and self.mode == "silent":
                    continue
                if faulted.is_set() and self.mode == "error":
                    client.sendall(INTERNAL_ERROR)
                    break
                server.sendall(chunk)
        _close(client, server)

    def _answers(self, server: socket.socket, client: socket.socket, faulted: threading.Event) -> None:
        sent = 0
        with suppress(OSError):
            while chunk := server.recv(CHUNK):
                if faulted.is_set() and self.mode == "slow" and self._stopped.wait(self.delay):
                    break
                if faulted.is_set() and self.mode == "cut":
                    client.sendall(chunk[: self.cut_after - sent])
                    sent += len(chunk)
                    if sent >= self.cut_after:
                        break
                    continue
                client.sendall(chunk)
        _close(client, server)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with suppress(OSError):
            sock.close()
