"""A local HTTP proxy that records where clients ask it to go (the differential tests' witness).

It listens on 127.0.0.1 and understands the two ways a client uses a proxy:

* ``CONNECT host:port`` (HTTPS through a tunnel): the target and the request's headers are recorded;
* an absolute-URI request line (``POST http://host:port/path HTTP/1.1``, plain HTTP forwarding): the
  URI and the headers are recorded.

It never connects anywhere but 127.0.0.1: a target listed in ``routes`` (``"localhost:443"`` ->
a local port) is tunnelled or forwarded to that port; any other target is recorded and refused with
``502 Bad Gateway``, so a test learns which AWS host a client would have reached without any traffic
leaving the machine. Every socket has a timeout and every thread is a daemon joined on ``stop()``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import selectors
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Mapping

__all__ = ["ProxiedRequest", "RecordingProxy"]

_MAX_HEAD = 64 * 1024
_IDLE_TIMEOUT = 10.0  # seconds a tunnel may carry nothing before the proxy closes it
_REFUSAL = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclasses.dataclass(frozen=True)
class ProxiedRequest:
    """One request as the proxy saw it."""

    method: str
    target: str  # "host:port" for CONNECT, the absolute URI otherwise
    headers: Mapping[str, str]  # lower-case names

    @property
    def authority(self) -> str:
        """``host:port`` the client asked for (the default port filled in for an absolute URI)."""
        if self.method == "CONNECT":
            return self.target
        parts = urllib.parse.urlsplit(self.target)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{parts.hostname}:{port}"


class RecordingProxy:
    """``with RecordingProxy(routes={"localhost:443": port}) as proxy:`` then ``proxy.url``."""

    def __init__(self, routes: Mapping[str, int] | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.routes = dict(routes or {})
        self.tls = tls  # an HTTPS proxy: clients speak TLS to the proxy itself (then CONNECT inside it)
        if tls is not None and self.routes:
            raise ValueError("an HTTPS proxy here only records and refuses; it has no routes")
        self._requests: list[ProxiedRequest] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._acceptor = threading.Thread(target=self._accept_loop, name="recording-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[ProxiedRequest]:
        with self._lock:
            return list(self._requests)

    def targets(self) -> list[str]:
        return [request.target for request in self.requests]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def start(self) -> RecordingProxy:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):  # shutdown wakes the blocked accept() (Linux, macOS)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join(5)
        with self._lock:
            for sock in self._sockets:
                sock.close()
            threads = list(self._threads)
        for thread in threads:
            thread.join(5)

    def __enter__(self) -> RecordingProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- connections ----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            with self._lock:
                self._sockets.add(client)
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(_IDLE_TIMEOUT)
        try:
            if self.tls is not None:
                # No tunnels over TLS: piping would need the TLS buffer drained around select().
                client = self.tls.wrap_socket(client, server_side=True)
            head, rest = _read_head(client)
            if head is None:
                return
            request = _parse_head(head)
            if request is None:
                client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            with self._lock:
                self._requests.append(request)
            port = self.routes.get(request.authority)
            if port is None:
                client.sendall(_REFUSAL)
                return
            upstream = socket.create_connection(("127.0.0.1", port), timeout=_IDLE_TIMEOUT)
            with self._lock:
                self._sockets.add(upstream)
            try:
                if request.method == "CONNECT":
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    if rest:
                        upstream.sendall(rest)
                else:  # forwarding: the local endpoint accepts the absolute-URI request line as it is
                    upstream.sendall(head + rest)
                self._pipe(client, upstream)
            finally:
                upstream.close()
                with self._lock:
                    self._sockets.discard(upstream)
        except (OSError, ValueError):  # ValueError: a socket closed by stop() under select()
            pass
        finally:
            client.close()
            with self._lock:
                self._sockets.discard(client)

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        with selectors.DefaultSelector() as selector:
            for sock in peers:
                selector.register(sock, selectors.EVENT_READ)
            while not self._stopping.is_set():
                ready = selector.select(_IDLE_TIMEOUT)
                if not ready:
                    return
                for key, _ in ready:
                    source = key.fileobj
                    assert isinstance(source, socket.socket)
                    data = source.recv(65536)
                    if not data:
                        return
                    peers[source].sendall(data)


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    """The request head (through the blank line) and whatever arrived after it."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > _MAX_HEAD:
            return None, b""
        data = sock.recv(65536)
        if not data:
            return None, b""
        buffer += data
    end = buffer.index(b"\r\n\r\n") + 4
    return buffer[:end], buffer[end:]


def _parse_head(head: bytes) -> ProxiedRequest | None:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    method, target, _version = parts
    if method != "CONNECT" and "://" not in target:
        return None  # a proxy only takes CONNECT or absolute URIs
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return ProxiedRequest(method, target, headers)
