"""The asyncio client's connection protocol on its own, with a transport that records what it is told."""

from __future__ import annotations

import asyncio

from evstream.sagemaker._aio_connection import MAX_ERROR_BODY, Connection
from evstream.sagemaker._base import SAGEMAKER
from evstream.sagemaker.reader import LENGTH, BodyReader

from frames import token_frame


class _Transport:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def write(self, data: bytes) -> None:
        self.calls.append("write")

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def close(self) -> None:
        self.calls.append("close")


def _connection_with_events(count: int) -> tuple[Connection, _Transport]:
    """A connection whose whole answer (``count`` data events) came in one read."""
    loop = asyncio.new_event_loop()
    loop.close()  # nothing here waits: the loop is only the connection's clock
    connection = Connection(loop)
    transport = _Transport()
    connection.connection_made(transport)
    connection.send(b"POST / HTTP/1.1\r\n\r\n")
    body = b"".join(token_frame(b"t%d" % i) for i in range(count))
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\n"
    connection.data_received(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert connection.head is not None
    connection.read_body(BodyReader(SAGEMAKER, framing=LENGTH, length=len(body), boto_shape=False))
    return connection, transport


def test_take_hands_over_the_batch_and_refills_a_paused_connection() -> None:
    count = 3000  # more than the reader hands out in one feed
    connection, transport = _connection_with_events(count)
    assert connection.paused and transport.calls[-1] == "pause"  # the reader holds input beyond a batch
    ready = list(connection.ready)
    first = connection.take()
    assert first == ready and 0 < len(first) < count
    assert connection.ready[0] == b"t%d" % len(first)  # refilled from the input the reader held
    taken = first
    while connection.ready:
        taken += connection.take()
    assert taken == [b"t%d" % i for i in range(count)]
    assert connection.finished and not connection.paused and transport.calls[-1] == "resume"


def test_take_on_a_connection_that_reads_on() -> None:
    connection, transport = _connection_with_events(3)
    assert not connection.paused
    assert connection.take() == [b"t0", b"t1", b"t2"]
    assert connection.ready == [] and "resume" not in transport.calls


def test_an_error_body_is_read_to_its_end_and_kept_to_its_first_mib() -> None:
    body = bytes(range(256)) * (3 << 12)  # 3 MiB, in reads of 64 KiB
    head = b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n" % len(body)

    async def main() -> tuple[bytes, Connection]:
        loop = asyncio.get_running_loop()
        connection = Connection(loop)
        connection.connection_made(_Transport())
        connection.send(b"POST / HTTP/1.1\r\n\r\n")
        answer = head + body
        for start in range(0, len(answer), 1 << 16):
            loop.call_soon(connection.data_received, answer[start : start + (1 << 16)])
        while connection.head is None:
            await connection.wait()
        return await connection.read_error_body(), connection

    kept, connection = asyncio.run(main())
    assert kept == body[:MAX_ERROR_BODY]
    assert connection.finished and connection.ready == []
