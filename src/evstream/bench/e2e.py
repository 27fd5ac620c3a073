"""End to end: the client CPU each event costs, evstream's clients against boto3 and aiobotocore.

The one harness of ``python -m evstream bench`` (suite ``e2e``), ``benchmarks/bench_client.py`` and the
demo. The endpoint (``python -m evstream serve``) runs in a child process on loopback, checks SigV4 and
sends each event as its own HTTP chunk (``chunk_events`` per chunk), so the figure, this process's CPU
time (``time.process_time``) per event, is the client's cost alone.

A :class:`Workload` says what is streamed (events per stream, concurrent streams, events per chunk, the
gap between events for trickled streams); :class:`Clients` makes the runner of each peer once per
endpoint (``PEERS`` lists them; a new peer, such as a floor that reads the bytes and decodes nothing, is
one more entry) on the default asyncio loop or uvloop; :func:`e2e_cases` turns runners into bench cases
and :func:`measure_cpu` times one runner alone.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..emulator.process import EmulatorProcess
from ..emulator.sigv4 import credentials_env
from ..emulator.workloads import Behavior, generate_text
from .measure import Case
from .peers import Impl, Skip, try_import

__all__ = [
    "KEYS",
    "PEERS",
    "Clients",
    "CpuResult",
    "LocalEndpoint",
    "PeerUnavailable",
    "Runner",
    "Workload",
    "e2e_cases",
    "measure_cpu",
]

# The keys the endpoint checks signatures with; the child gets them in its environment, not on argv.
KEYS = {"aws_access_key_id": "AKIDEVSTREAMBENCH", "aws_secret_access_key": "bench-secret"}
REGION = "us-east-1"

Runner = Callable[[], bytes]  # one stream (or all the concurrent streams) -> the payload bytes received


@dataclass(frozen=True)
class Workload:
    """What the endpoint streams to one runner call."""

    events: int  # token events per stream
    streams: int = 1  # concurrent streams (the asyncio peers run them at once; sync peers one by one)
    chunk_events: int = 1  # events per HTTP chunk
    interval_ms: float = 0.0  # > 0: trickled, the endpoint sends an event every this many ms

    @property
    def total_events(self) -> int:
        return self.events * self.streams

    def body(self, stream: int = 0) -> bytes:
        """The request body of stream number ``stream`` (each stream has its own text)."""
        options: dict[str, Any] = {
            "format": "raw",
            "tokens": self.events,
            "chunk_events": self.chunk_events,
            "seed": stream,
        }
        if self.interval_ms:
            options["rate"] = 1000.0 / self.interval_ms
        return json.dumps({"emulator": options}).encode()

    def expected(self) -> bytes:
        """The payload bytes of every stream, in stream order: what a runner must return."""
        return b"".join(
            generate_text(Behavior(tokens=self.events, seed=s)).encode() for s in range(self.streams)
        )

    @property
    def key(self) -> str:
        key = f"e2e/tokens/{self.chunk_events}-per-chunk"
        if self.streams > 1:
            key += f"/{self.streams}-streams"
        if self.interval_ms:
            key += f"/{self.interval_ms:g}ms"
        return key

    @property
    def label(self) -> str:
        per_chunk = "one per HTTP chunk" if self.chunk_events == 1 else f"{self.chunk_events} per HTTP chunk"
        text = f"{self.events} token events, {per_chunk}"
        if self.streams > 1:
            text = f"{self.streams} streams x {text}"
        if self.interval_ms:
            text += f", {self.interval_ms:g} ms apart"
        return text + " (client CPU)"


class LocalEndpoint:
    """``python -m evstream serve`` in a child process, checking signatures made with :data:`KEYS`."""

    def __init__(self, *serve_args: str) -> None:
        env = credentials_env(KEYS["aws_access_key_id"], KEYS["aws_secret_access_key"])
        self._process = EmulatorProcess(*serve_args, env=env)
        self.url = self._process.url

    @property
    def client_kwargs(self) -> dict[str, str]:
        """What boto3, aiobotocore and evstream's clients are made with."""
        return {"region_name": REGION, "endpoint_url": self.url, **KEYS}

    def close(self) -> None:
        self._process.close()

    def __enter__(self) -> LocalEndpoint:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class PeerUnavailable(Exception):
    """A peer that cannot run here (not installed, no uvloop...); the message says why."""


def _payloads(response: Mapping[str, Any]) -> bytes:
    return b"".join([event["PayloadPart"]["Bytes"] for event in response["Body"]])


async def _apayloads(response: Mapping[str, Any]) -> bytes:
    events: AsyncIterator[dict[str, Any]] = response["Body"]
    return b"".join([event["PayloadPart"]["Bytes"] async for event in events])


def _module(name: str) -> Any:
    found = try_import(name)
    if isinstance(found, str):
        raise PeerUnavailable(found)
    return found


class Clients:
    """The clients of one endpoint, each made once (so rounds time streaming, not set-up), closed together.

    ``loop``: "asyncio" (the default event loop) or "uvloop", for the asyncio peers.
    """

    def __init__(self, endpoint: LocalEndpoint, *, loop: str = "asyncio") -> None:
        if loop not in ("asyncio", "uvloop"):
            raise ValueError(f"loop must be asyncio or uvloop, not {loop!r}")
        self.endpoint = endpoint
        self.loop_name = loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: dict[str, Any] = {}
        self._closers: list[Callable[[], None]] = []

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            if self.loop_name == "uvloop":
                self._loop = _module("uvloop").new_event_loop()
            else:
                self._loop = asyncio.new_event_loop()
        return self._loop

    def run(self, awaitable: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(awaitable)

    def client(self, name: str, max_connections: int = 10) -> Any:
        """The client ``name`` ("evstream", "evstream asyncio", "boto3", "aiobotocore"), made once."""
        key = f"{name}/{max_connections}"
        if key in self._clients:
            return self._clients[key]
        kwargs = self.endpoint.client_kwargs
        if name == "evstream":
            client = _module("evstream.sagemaker").client(**kwargs)
            self._closers.append(client.close)
        elif name == "evstream asyncio":
            client = _module("evstream.sagemaker").async_client(
                **kwargs, max_pool_connections=max_connections
            )
            self._closers.append(lambda: self.run(client.close()))
        elif name == "boto3":
            from botocore.config import Config

            config = Config(max_pool_connections=max_connections)
            client = _module("boto3").client("sagemaker-runtime", config=config, **kwargs)
            self._closers.append(client.close)
        elif name == "aiobotocore":
            from botocore.config import Config

            session = _module("aiobotocore.session").get_session()
            config = Config(max_pool_connections=max_connections)
            context = session.create_client("sagemaker-runtime", config=config, **kwargs)
            client = self.run(context.__aenter__())
            self._closers.append(lambda: self.run(context.__aexit__(None, None, None)))
        else:
            raise ValueError(f"unknown client {name!r}")
        self._clients[key] = client
        return client

    def runner(self, peer: str, workload: Workload) -> Runner:
        """The runner of ``peer`` (a :data:`PEERS` name) for ``workload``; raises PeerUnavailable."""
        return PEERS[peer](self, workload)

    def close(self) -> None:
        errors = []
        while self._closers:
            try:
                self._closers.pop()()
            except Exception as exc:  # closing one client must not leave the others open
                errors.append(exc)
        self._clients.clear()
        if self._loop is not None:
            self._loop.close()
            self._loop = None
        if errors:
            raise errors[0]

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _sync(invoke: Callable[[bytes], bytes], workload: Workload) -> Runner:
    bodies = [workload.body(s) for s in range(workload.streams)]
    return lambda: b"".join([invoke(body) for body in bodies])


def _boto3_shaped(name: str) -> Callable[[Clients, Workload], Runner]:
    """The runner of a client whose response events are boto3's dicts (evstream's sync client, boto3)."""

    def make(clients: Clients, workload: Workload) -> Runner:
        client = clients.client(name)

        def invoke(body: bytes) -> bytes:
            return _payloads(client.invoke_endpoint_with_response_stream(EndpointName="bench", Body=body))

        return _sync(invoke, workload)

    return make


def _evstream_payloads(clients: Clients, workload: Workload) -> Runner:
    client = clients.client("evstream")

    def invoke(body: bytes) -> bytes:
        response = client.invoke_endpoint_with_response_stream(EndpointName="bench", Body=body)
        return b"".join(list(response["Body"].payloads()))

    return _sync(invoke, workload)


def _boto3_dropin(clients: Clients, workload: Workload) -> Runner:
    dropin = _module("evstream.botocore")
    run = _boto3_shaped("boto3")(clients, workload)

    def with_dropin() -> bytes:
        with dropin.installed():
            return run()

    return with_dropin


def _concurrent(clients: Clients, name: str, workload: Workload) -> Runner:
    client = clients.client(name, max_connections=max(10, workload.streams))
    bodies = [workload.body(s) for s in range(workload.streams)]

    async def one(body: bytes) -> bytes:
        response = await client.invoke_endpoint_with_response_stream(EndpointName="bench", Body=body)
        return await _apayloads(response)

    async def every_stream() -> bytes:
        return b"".join(await asyncio.gather(*(one(body) for body in bodies)))

    return lambda: clients.run(every_stream())


PEERS: dict[str, Callable[[Clients, Workload], Runner]] = {
    "evstream client": _boto3_shaped("evstream"),
    "evstream payloads()": _evstream_payloads,
    "boto3": _boto3_shaped("boto3"),
    "boto3 + evstream drop-in": _boto3_dropin,
    "evstream asyncio": lambda clients, workload: _concurrent(clients, "evstream asyncio", workload),
    "aiobotocore": lambda clients, workload: _concurrent(clients, "aiobotocore", workload),
}
# The peers of `python -m evstream bench`: evstream's sync client is the reference.
BENCH_PEERS = ("evstream client", "boto3", "boto3 + evstream drop-in", "aiobotocore")


def e2e_cases(
    clients: Clients,
    workload: Workload,
    peers: Iterable[str] = BENCH_PEERS,
    *,
    primary: str = "evstream client",
    suite: str = "e2e",
    key: str | None = None,
    label: str | None = None,
    floor: tuple[Runner, Callable[[], bool]] | None = None,
) -> tuple[list[Case], list[Skip]]:
    """Bench cases (timed with process CPU) for ``peers`` on ``workload``; the unavailable ones as skips.
    ``suite``, ``key`` and ``label`` name them (the workload's own key and label by default); ``floor``, a
    runner that decodes nothing and its check, is one more case after the peers."""
    want = workload.expected()
    runners: list[tuple[str, Runner, Callable[[], bool]]] = []
    skips: list[Skip] = []
    for peer in peers:
        try:
            run = clients.runner(peer, workload)
        except PeerUnavailable as exc:
            skips.append(Skip(suite, peer, str(exc)))
            continue

        def check(run: Runner = run) -> bool:
            return run() == want

        runners.append((peer, run, check))
    if floor is not None:
        runners.append(("floor", *floor))
    cases = []
    for name, run, right in runners:
        impl = Impl(
            name, run, primary=name == primary, evstream=name.startswith(("evstream", "boto3 + evstream"))
        )
        cases.append(
            Case(
                suite,
                key or workload.key,
                label or workload.label,
                impl,
                (),
                right,
                len(want),
                workload.total_events,
                0,
                cpu=True,
            )
        )
    return cases, skips


class CpuResult(NamedTuple):
    cpu_per_event: float  # seconds of this process's CPU per event, best round
    events_per_s: float  # wall-clock rate, best round
    data: bytes  # what the last round received


def measure_cpu(
    run: Runner, events: int, rounds: int, on_round: Callable[[int], None] | None = None
) -> CpuResult:
    """Best CPU per event and best event rate of ``run`` over ``rounds`` rounds."""
    best_cpu = best_rate = 0.0
    data = b""
    for n in range(rounds):
        cpu, wall = time.process_time(), time.perf_counter()
        data = run()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        best_cpu = cpu / events if n == 0 else min(best_cpu, cpu / events)
        best_rate = max(best_rate, events / wall if wall > 0 else 0.0)
        if on_round is not None:
            on_round(n + 1)
    return CpuResult(best_cpu, best_rate, data)
