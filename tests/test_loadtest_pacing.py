"""What keeps a load test's own costs out of what it measures: how the local endpoint paces its records,
where the endpoint and the client run, the garbage collector in the measured window."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from evstream import Decoder
from evstream.emulator import latency
from evstream.emulator.events import payload_part
from evstream.emulator.latency import DUE_FIELD, STAMP_FIELD, Distribution, Pacing, pace, sleep_until
from evstream.emulator.loops import run
from evstream.loadtest import placement
from evstream.loadtest.measure import WINDOW_GC_THRESHOLD, WorkerLoad
from evstream.loadtest.placement import cpus_apart, machine_busy_share


class FakeTransport:
    """What the paced sender writes, and when (the loop's clock)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


class FakeWriter:
    def __init__(self, transport: FakeTransport) -> None:
        self.transport = transport

    async def drain(self) -> None:
        pass


def records_of(body: bytes) -> list[dict[str, Any]]:
    """The JSON records of a chunked body of PayloadPart events, checking the framing on the way."""
    assert body.endswith(b"0\r\n\r\n")
    pos, frames = 0, bytearray()
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end], 16)
        if not size:
            break
        frames += body[end + 2 : end + 2 + size]
        assert body[end + 2 + size : end + 4 + size] == b"\r\n"
        pos = end + 4 + size
    messages = Decoder().feed(bytes(frames))
    return [json.loads(m.payload.decode().removeprefix("data:")) for m in messages]


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_paced_records_go_out_together_once_a_tick_never_before_due(loop_kind: str) -> None:
    # uvloop's timers fire up to a millisecond early: the sender reads due times on its own clock.
    if loop_kind == "uvloop":
        pytest.importorskip("uvloop")
    streams, parts_each = 24, 12
    parts = [b'data:{"token": {"text": "t%d"}}\n\n' % n for n in range(parts_each)]
    fires: list[float] = []

    async def main() -> list[FakeTransport]:
        loop = asyncio.get_running_loop()
        ticker = latency._tickers[loop] = latency._Ticker(loop)
        fire = ticker._fire

        def timed_fire() -> None:
            at, tick = time.perf_counter(), ticker.next_tick
            fire()
            if ticker.next_tick != tick:  # it sent: an early wake-up that only re-arms does not
                fires.append(at)

        ticker._fire = timed_fire  # type: ignore[method-assign]
        transports = [FakeTransport(loop) for _ in range(streams)]
        itl = Distribution("uniform", 0.0002, 0.003)  # due times far closer together than a tick
        results = await asyncio.gather(
            *(
                pace(FakeWriter(t), parts, Pacing(None, itl, 0, n), payload_part, True)  # type: ignore[arg-type]
                for n, t in enumerate(transports)
            )
        )
        assert results == [(True, parts_each)] * streams
        return transports

    transports = run(main(), loop_kind)
    records = [record for t in transports for record in records_of(bytes(t.data))]
    assert len(records) == streams * parts_each
    # Never before its due time (the stamps are read as each record is written).
    assert all(r[STAMP_FIELD] >= r[DUE_FIELD] for r in records)
    assert [r["token"]["text"] for r in records] == [f"t{n}" for n in range(parts_each)] * streams
    gaps = [b - a for a, b in zip(fires, fires[1:])]
    assert min(gaps) >= latency._TICK - 1e-6  # at most one wake-up a tick
    assert len(fires) < len(records) / 4  # so the sends of a tick went out together


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_sleep_until_never_wakes_before_the_due_time(loop_kind: str) -> None:
    if loop_kind == "uvloop":
        pytest.importorskip("uvloop")

    async def main() -> list[int]:
        early = []
        for wait_ns in (300_000, 700_000, 1_200_000, 2_500_000, 30_000_000) * 4:
            due_ns = latency.clock_ns() + wait_ns
            await sleep_until(due_ns)
            early.append(due_ns - latency.clock_ns())
        return early

    assert max(run(main(), loop_kind)) <= 0


def test_a_stamped_paced_record_is_the_record_with_two_members_more() -> None:
    record = b'data:{"token": {"text": "x"}, "generated_text": null}\n\n'
    stamped = latency.stamp_record(record, 1234)
    value = json.loads(stamped[5:])
    assert value[DUE_FIELD] == 1234 and value[STAMP_FIELD] > 0
    assert {k: v for k, v in value.items() if k not in (DUE_FIELD, STAMP_FIELD)} == json.loads(record[5:])
    assert stamped.endswith(b"}\n\n")
    assert latency.stamp_record(b"data: [DONE]\n\n", 1) == b"data: [DONE]\n\n"


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="CPU affinity on Linux with two CPUs or more",
)
def test_the_endpoint_and_the_client_get_cpus_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    mine = os.sched_getaffinity(0)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with cpus_apart(child.pid, 1, "on") as where:
            endpoint_cpus = os.sched_getaffinity(child.pid)
            assert len(endpoint_cpus) == 1 and f"endpoint on CPU {min(endpoint_cpus)}" in where
            assert os.sched_getaffinity(0) == mine - endpoint_cpus
        assert os.sched_getaffinity(0) == mine  # given back
        with cpus_apart(child.pid, len(mine), "on") as where:  # no room for that many clients
            assert where == "" and os.sched_getaffinity(0) == mine
        with cpus_apart(child.pid, 1, "off") as where:
            assert where == "" and os.sched_getaffinity(0) == mine
        # auto pins a machine found idle, and says why it did not otherwise
        monkeypatch.setattr(placement, "machine_busy_share", lambda: 0.01)
        with cpus_apart(child.pid, 1, "auto") as where:
            assert where.startswith("endpoint on CPU") and os.sched_getaffinity(0) != mine
        monkeypatch.setattr(placement, "machine_busy_share", lambda: 0.5)
        with cpus_apart(child.pid, 1, "auto") as where:
            assert where == "not pinned: the CPUs were 50% busy at the start"
            assert os.sched_getaffinity(0) == mine
        with pytest.raises(ValueError, match="pin must be"), cpus_apart(child.pid, 1, "yes"):
            pass
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/stat")
def test_the_machine_busy_share_is_a_share() -> None:
    share = machine_busy_share(0.05)
    assert share is not None and 0.0 <= share <= 1.0


def test_the_collector_runs_rarely_in_the_window_and_as_before_after_it() -> None:
    before = gc.get_threshold()
    load = WorkerLoad("worker")
    load.begin()
    try:
        assert gc.get_threshold() == (max(WINDOW_GC_THRESHOLD, before[0]), *before[1:])
        gc.collect()  # a pass in the window is still timed
    finally:
        load.end()
    assert gc.get_threshold() == before
    assert load.gc_pause_max_ns > 0 and load.gc_pause_s > 0
