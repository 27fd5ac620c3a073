"""The trickled regime: events a few milliseconds apart, each its own TCP segment, as a model streams tokens.

There the cost per wake-up, not per byte, is what a client pays, so each peer is set against the floor of
this machine measured in the same run: the least a Python client can do per event with the same loop and
the same socket reads, decoding nothing.

* asyncio (default loop and uvloop): many concurrent streams; the floor is a bare ``asyncio.Protocol`` per
  connection whose ``data_received`` feeds an ``asyncio.Queue`` that one consumer task per stream drains;
* sync: one stream; the floor is a blocking ``recv`` loop on one socket.

The floors keep their connections open across rounds, as the clients' pools do, and send requests signed
once up front with botocore's SigV4 (signing is the clients' cost, not the transport's). The endpoint is
:class:`~evstream.bench.e2e.LocalEndpoint`, in another process; the figure is this process's CPU time per
event (``time.process_time``), best of the rounds.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from .cases import _CLEANUPS, start_local_endpoint
from .e2e import KEYS, REGION, Clients, PeerUnavailable, Workload, e2e_cases
from .measure import Case
from .peers import Skip

__all__ = [
    "ASYNC_WORKLOADS",
    "SYNC_WORKLOAD",
    "TINY_ASYNC_WORKLOAD",
    "TINY_SYNC_WORKLOAD",
    "floor_asyncio",
    "floor_ran",
    "floor_sync",
    "trickle_plan",
    "trickle_sets",
]

ASYNC_WORKLOADS = (
    Workload(events=100, streams=256, interval_ms=10.0),
    Workload(events=100, streams=1000, interval_ms=10.0),
)
SYNC_WORKLOAD = Workload(events=400, streams=1, interval_ms=2.5)
# The smoke run's (--tiny, EVSTREAM_BENCH_MODE=tiny): the harness works, the numbers mean nothing.
TINY_ASYNC_WORKLOAD = Workload(events=20, streams=8, interval_ms=10.0)
TINY_SYNC_WORKLOAD = Workload(events=20, interval_ms=2.5)
_END = b"0\r\n\r\n"  # the last chunk of a body without trailers (the endpoint sends none)


class _Requests:
    """The floor's signed requests, signed again once they are older than :data:`_RESIGN_S` (SigV4 allows
    five minutes of skew; a full run is longer). The first call of a workload is the answer check,
    untimed: that is where a fresh signing lands."""

    def __init__(self, url: str, workload: Workload) -> None:
        self._url, self._workload = url, workload
        self._signed_at = time.monotonic()
        self._requests = _signed_requests(url, workload)

    def get(self) -> list[bytes]:
        if time.monotonic() - self._signed_at > _RESIGN_S:
            self._signed_at = time.monotonic()
            self._requests = _signed_requests(self._url, self._workload)
        return self._requests


_RESIGN_S = 120.0


def _signed_requests(url: str, workload: Workload) -> list[bytes]:
    """One signed HTTP/1.1 request per stream, as bytes (signed with botocore, outside the timing)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    credentials = Credentials(KEYS["aws_access_key_id"], KEYS["aws_secret_access_key"])
    parts = urllib.parse.urlsplit(url)
    path = "/endpoints/bench/invocations-response-stream"
    requests = []
    for stream in range(workload.streams):
        body = workload.body(stream)
        request = AWSRequest("POST", url + path, data=body, headers={"Content-Type": "application/json"})
        SigV4Auth(credentials, "sagemaker", REGION).add_auth(request)
        head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in request.headers.items())
        requests.append((head + "\r\n").encode() + body)
    return requests


def _address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


class _FloorProtocol(asyncio.Protocol):
    """The least an asyncio client can do: hand each read to a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def data_received(self, data: bytes) -> None:
        self.queue.put_nowait(data)

    def eof_received(self) -> None:
        self.queue.put_nowait(b"")


def floor_asyncio(clients: Clients, workload: Workload) -> Callable[[], bytes]:
    """The floor runner of ``workload`` on ``clients``' loop: it returns the bytes of every response."""
    signed = _Requests(clients.endpoint.url, workload)
    host, port = _address(clients.endpoint.url)
    loop = clients.loop
    transports: list[asyncio.Transport] = []
    protocols: list[_FloorProtocol] = []

    async def connect(n: int) -> None:
        transport, protocol = await loop.create_connection(_FloorProtocol, host, port)
        if n < len(transports):
            transports[n], protocols[n] = transport, protocol
        else:
            transports.append(transport)
            protocols.append(protocol)

    async def one(n: int, requests: list[bytes]) -> int:
        if transports[n].is_closing() or not protocols[n].queue.empty():
            await connect(n)  # the endpoint closed it while idle: open another, as a pool does
        transports[n].write(requests[n])
        received = 0
        tail = b""
        while True:
            data = await protocols[n].queue.get()
            if not data:
                if received:
                    raise ConnectionError("the endpoint closed the connection inside a response")
                await connect(n)  # closed as the request went out (a pool retries this too)
                transports[n].write(requests[n])
                continue
            received += len(data)
            tail = (tail + data)[-len(_END) :]
            if tail == _END:
                return received

    async def every_stream() -> bytes:
        requests = signed.get()
        if not transports:
            for n in range(len(requests)):
                await connect(n)
        sizes = await asyncio.gather(*(one(n, requests) for n in range(len(requests))))
        return b"%d" % sum(sizes)

    def close() -> None:
        for transport in transports:
            transport.close()

    clients._closers.append(close)
    return lambda: clients.run(every_stream())


def floor_sync(clients: Clients, workload: Workload) -> Callable[[], bytes]:
    """The sync floor: a blocking ``recv`` loop per stream, one stream after another, on one connection
    (opened again when the endpoint closed it while idle, as a pool does)."""
    signed = _Requests(clients.endpoint.url, workload)
    address = _address(clients.endpoint.url)
    held: list[socket.socket] = []

    def connection() -> socket.socket:
        if not held:
            sock = socket.create_connection(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            held.append(sock)
        return held[0]

    def stream(request: bytes) -> int:
        sock = connection()
        sock.sendall(request)
        received = 0
        tail = b""
        while True:
            data = sock.recv(65536)
            if not data:
                held.pop().close()
                if received:
                    raise ConnectionError("the endpoint closed the connection inside a response")
                return stream(request)  # it had closed the idle connection: once more on a new one
            received += len(data)
            tail = (tail + data)[-len(_END) :]
            if tail == _END:
                return received

    def run() -> bytes:
        return b"%d" % sum(stream(request) for request in signed.get())

    def close() -> None:
        while held:
            held.pop().close()

    clients._closers.append(close)
    return run


def trickle_plan(mode_name: str) -> list[tuple[Workload, str]]:
    """What the suite ``trickle`` runs in each bench mode: (workload, loop) pairs, "sync" for the sync
    client. The sync set runs first, in a process as small as a sync program's: run after the
    1,000-stream sets, the sync client measured 1.6x its floor instead of 1.1-1.3x (the floor hardly
    moved), most likely because the larger heap those sets leave makes each memory touch after a sleep
    dearer, and the client touches more memory per event than its floor."""
    if mode_name == "tiny":
        return [(TINY_SYNC_WORKLOAD, "sync"), (TINY_ASYNC_WORKLOAD, "asyncio")]
    workloads = ASYNC_WORKLOADS if mode_name == "full" else ASYNC_WORKLOADS[:1]
    return [(SYNC_WORKLOAD, "sync")] + [(w, loop) for loop in ("uvloop", "asyncio") for w in workloads]


def floor_ran(run: Callable[[], bytes]) -> bool:
    """A floor's answer check. The floors decode nothing: theirs is right when every body ended, which is
    when a floor runner returns (a body cut short raises)."""
    return bool(run())


def trickle_sets(mode: Any) -> tuple[list[list[Case]], list[Skip]]:
    """The suite ``trickle`` of ``python -m evstream bench``: per workload and loop, evstream (the
    reference of the ratios), its floor and its peer, timed with process CPU in interleaved rounds."""
    endpoint, skips = start_local_endpoint("trickle")
    if endpoint is None:
        return [], skips
    sets: list[list[Case]] = []
    for workload, loop in trickle_plan(mode.name):
        try:
            clients = Clients(endpoint, loop="asyncio" if loop == "sync" else loop)
            if loop == "uvloop":
                clients.loop  # noqa: B018  (uvloop missing: skipped here)
        except PeerUnavailable as exc:
            skips.append(Skip("trickle", f"{loop} loop", str(exc)))
            continue
        _CLEANUPS.append(clients.close)
        primary, peer = (
            ("evstream client", "boto3") if loop == "sync" else ("evstream asyncio", "aiobotocore")
        )
        floor = floor_sync(clients, workload) if loop == "sync" else floor_asyncio(clients, workload)
        what = workload.label.replace(" (client CPU)", "")
        cases, missing = e2e_cases(
            clients,
            workload,
            (primary, peer),
            primary=primary,
            suite="trickle",
            key=f"trickle/{loop}/{workload.streams}x{workload.events}/{workload.interval_ms:g}ms",
            label=f"{loop}: {what} (client CPU; floor: {_FLOOR_WORDS[loop]})",
            floor=(floor, functools.partial(floor_ran, floor)),
        )
        skips += missing
        sets.append(cases)
    return sets, skips


_FLOOR_WORDS = {
    "sync": "a blocking recv loop",
    "asyncio": "a bare asyncio.Protocol feeding a queue",
    "uvloop": "a bare asyncio.Protocol feeding a queue",
}
