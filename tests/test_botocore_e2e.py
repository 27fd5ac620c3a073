"""End to end: real boto3 and aiobotocore ``sagemaker-runtime`` clients against local endpoints on 127.0.0.1,
with and without ``evstream.botocore.install()``: the same events and the same exceptions.

Two endpoints: evstream's emulator (a SageMaker-compatible endpoint) for token streams and in-stream
faults, and ``FrameServer`` below, which sends given bytes cut into HTTP chunks exactly where a test says,
for frames split at every offset.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import pytest

import evstream

from frames import header, raw_frame, token_frame

boto3 = pytest.importorskip("boto3")
import botocore.config  # noqa: E402
import botocore.exceptions  # noqa: E402

import evstream.botocore as eb  # noqa: E402
from evstream.emulator import Behavior, EmulatorThread, generate_text, split_parts  # noqa: E402

CREDENTIALS = {
    "aws_access_key_id": "AKIDEXAMPLE",
    "aws_secret_access_key": "secret",
    "region_name": "us-east-1",
}
CONFIG = botocore.config.Config(
    retries={"max_attempts": 1, "mode": "standard"}, read_timeout=10, connect_timeout=5
)

Outcome = tuple[list[Any], Any]  # (events, (exception class name, its response) or None)


class FrameServer:
    """Serves ``body`` to every streaming invocation, one HTTP chunk per piece between ``cuts``."""

    def __init__(self) -> None:
        self.body = b""
        self.cuts: Sequence[int] = ()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each response waits for a delayed ACK (40 ms)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body, cuts = outer.body, outer.cuts
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.amazon.eventstream")
                self.send_header("X-Amzn-SageMaker-Content-Type", "text/plain")
                self.send_header("x-amzn-RequestId", "local")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                bounds = [0, *sorted(c for c in cuts if 0 < c < len(body)), len(body)]
                pieces = [body[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]
                self.wfile.write(b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def serve(self, body: bytes, cuts: Sequence[int] = ()) -> None:
        self.body, self.cuts = body, cuts


@pytest.fixture(scope="module")
def frame_server() -> Iterator[FrameServer]:
    server = FrameServer()
    server.thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()
    server.thread.join(5)


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread(host="127.0.0.1", port=0) as thread:
        yield thread


def make_client(url: str) -> Any:
    return boto3.session.Session().client("sagemaker-runtime", endpoint_url=url, config=CONFIG, **CREDENTIALS)


@pytest.fixture(scope="module")
def frame_client(frame_server: FrameServer) -> Any:
    return make_client(frame_server.url)


@pytest.fixture(scope="module")
def emulator_client(emulator: EmulatorThread) -> Any:
    return make_client(emulator.url)


@pytest.fixture
def use_codec(codec: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The drop-in's buffers decode through ``codec``; installed only where a test says so."""
    monkeypatch.setattr(evstream, "Decoder", codec.Decoder)
    eb.uninstall()
    yield
    eb.uninstall()


def outcome_of(error: Exception) -> Any:
    if isinstance(error, botocore.exceptions.EventStreamError):
        return ("EventStreamError", error.response["Error"])
    return (type(error).__name__, str(error))


def invoke(client: Any, body: bytes = b"{}") -> Outcome:
    response = client.invoke_endpoint_with_response_stream(
        EndpointName="ep", Body=body, ContentType="application/json"
    )
    events: list[Any] = []
    try:
        for event in response["Body"]:
            events.append(event)
    except Exception as exc:
        return events, outcome_of(exc)
    return events, None


def both(client: Any, body: bytes = b"{}") -> tuple[Outcome, Outcome]:
    """(without the drop-in, with it), for the same request."""
    eb.uninstall()
    theirs = invoke(client, body)
    with eb.installed():
        ours = invoke(client, body)
    return theirs, ours


def emulator_body(**behavior: Any) -> bytes:
    return json.dumps({"inputs": "hi", "emulator": behavior}).encode()


def part_frame(payload: bytes) -> bytes:
    headers = {
        ":event-type": "PayloadPart",
        ":content-type": "application/octet-stream",
        ":message-type": "event",
    }
    return evstream.encode(headers, payload)


def payload_events(parts: Sequence[bytes]) -> list[Any]:
    return [{"PayloadPart": {"Bytes": p}} for p in parts]


# ----------------------------------------------------------------------------------- boto3, emulator


@pytest.mark.parametrize("fmt", ["tgi", "lmi", "raw"])
def test_payload_part_streams(use_codec: None, emulator_client: Any, fmt: str) -> None:
    behavior: dict[str, Any] = {"format": fmt, "tokens": 40, "straddle": True, "chunk_events": 3}
    theirs, ours = both(emulator_client, emulator_body(**behavior))
    expected = list(split_parts(Behavior(**behavior)))
    assert ours == theirs == (payload_events(expected), None)
    if fmt == "raw":
        assert b"".join(e["PayloadPart"]["Bytes"] for e in ours[0]).decode() == generate_text(
            Behavior(**behavior)
        )


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("model-stream-error", {"Code": "ModelStreamError", "Message": "Emulated model stream error"}),
        (
            "internal-stream-failure",
            {"Code": "InternalStreamFailure", "Message": "Emulated internal stream failure"},
        ),
        ("error-event", {"Code": "EmulatedError", "Message": "Emulated unmodelled error"}),
    ],
)
def test_in_stream_exceptions(
    use_codec: None, emulator_client: Any, fault: str, error: dict[str, str]
) -> None:
    behavior = {"format": "raw", "tokens": 10, "fault": fault, "after": 4}
    theirs, ours = both(emulator_client, emulator_body(**behavior))
    assert ours == theirs
    events, raised = ours
    assert events == payload_events(list(split_parts(Behavior(format="raw", tokens=10)))[:4])
    assert raised == ("EventStreamError", error)


def test_corrupt_frame(use_codec: None, emulator_client: Any) -> None:
    theirs, ours = both(emulator_client, emulator_body(format="raw", tokens=6, fault="corrupt", after=2))
    assert ours[0] == theirs[0] and len(ours[0]) == 2
    # botocore's ChecksumMismatch in both cases; the drop-in's is botocore's class too.
    assert theirs[1][0] == "ChecksumMismatch"
    assert ours[1][0] == "MessageChecksumMismatch"


# -------------------------------------------------------------------------------- boto3, FrameServer


def test_split_at_every_offset(use_codec: None, frame_server: FrameServer, frame_client: Any) -> None:
    parts = [b"Hello", b" w\xc3", b"\xa9rld", b""]
    frames = [part_frame(p) for p in parts]
    stream = b"".join(frames)
    expected = (payload_events(parts), None)
    # One chunk per byte: every frame is split at every one of its offsets in one response.
    frame_server.serve(stream, range(len(stream)))
    assert both(frame_client) == (expected, expected)
    # Two chunks, cut at each offset of the first two frames (the same for the rest of the stream).
    with eb.installed():
        for cut in range(1, len(frames[0]) + len(frames[1])):
            frame_server.serve(stream, [cut])
            assert invoke(frame_client) == expected, cut


def test_drop_in_is_what_decodes(use_codec: None, frame_server: FrameServer, frame_client: Any) -> None:
    # A truncated string header: botocore yields an event, the drop-in raises a ParserError.
    frame_server.serve(
        token_frame("ok") + raw_frame(header(b":event-type", 7, b"\x00\x0bPayload"), b"x"), [40]
    )
    theirs, ours = both(frame_client)
    assert theirs == ([{"PayloadPart": {"Bytes": b"ok"}}], None)
    assert ours[0] == theirs[0]
    assert ours[1][0] == "InvalidHeaderValue"


def test_in_stream_exception_split_across_chunks(
    use_codec: None, frame_server: FrameServer, frame_client: Any
) -> None:
    error = evstream.encode(
        {
            ":message-type": "exception",
            ":exception-type": "ModelStreamError",
            ":content-type": "application/json",
        },
        b'{"Message": "boom", "ErrorCode": "StreamBroken"}',
    )
    stream = token_frame("a") + error
    frame_server.serve(stream, range(0, len(stream), 5))
    theirs, ours = both(frame_client)
    assert (
        ours
        == theirs
        == (
            [{"PayloadPart": {"Bytes": b"a"}}],
            ("EventStreamError", {"Code": "ModelStreamError", "Message": "boom"}),
        )
    )


# --------------------------------------------------------------------------------------- aiobotocore


async def aio_invoke(url: str, body: bytes) -> Outcome:
    import aiobotocore.session

    session = aiobotocore.session.get_session()
    async with session.create_client(
        "sagemaker-runtime", endpoint_url=url, config=CONFIG, **CREDENTIALS
    ) as client:
        response = await client.invoke_endpoint_with_response_stream(EndpointName="ep", Body=body)
        events: list[Any] = []
        try:
            async for event in response["Body"]:
                events.append(event)
        except Exception as exc:
            return events, outcome_of(exc)
        return events, None


def aio_both(url: str, body: bytes = b"{}") -> tuple[Outcome, Outcome]:
    eb.uninstall()
    theirs = asyncio.run(aio_invoke(url, body))
    with eb.installed():
        ours = asyncio.run(aio_invoke(url, body))
    return theirs, ours


@pytest.fixture
def aio(use_codec: None) -> None:
    pytest.importorskip("aiobotocore.eventstream")


def test_aiobotocore_streams_and_faults(aio: None, emulator: EmulatorThread) -> None:
    behavior = {"format": "tgi", "tokens": 12, "straddle": True, "fault": "model-stream-error", "after": 7}
    theirs, ours = aio_both(emulator.url, emulator_body(**behavior))
    assert ours == theirs
    parts = list(split_parts(Behavior(format="tgi", tokens=12, straddle=True)))[:7]
    assert ours == (
        payload_events(parts),
        ("EventStreamError", {"Code": "ModelStreamError", "Message": "Emulated model stream error"}),
    )


def test_aiobotocore_split_frames(aio: None, frame_server: FrameServer) -> None:
    stream = b"".join(token_frame(t) for t in ("x", "yz", "")) + evstream.encode(
        {":message-type": "exception", ":exception-type": "InternalStreamFailure"}, b'{"Message": "retry"}'
    )
    frame_server.serve(stream, range(0, len(stream), 3))
    theirs, ours = aio_both(frame_server.url)
    assert ours == theirs
    assert ours[1] == ("EventStreamError", {"Code": "InternalStreamFailure", "Message": "retry"})
    # And the drop-in is what decoded: a frame botocore accepts and evstream rejects.
    frame_server.serve(token_frame("ok") + raw_frame(b"\x00\x00"), [7])
    theirs, ours = aio_both(frame_server.url)
    assert theirs == ([{"PayloadPart": {"Bytes": b"ok"}}], None)
    assert ours == (theirs[0], ("InvalidHeaderName", ours[1][1]))
