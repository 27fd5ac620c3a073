"""The asyncio HTTP/2 bidirectional client against the local endpoint (TLS, every signature checked)."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from http2_support import CREDENTIALS, behaving, last_exchange, local
from http2_support import ca_file as ca_file  # the fixtures
from http2_support import endpoint as endpoint
from http2_support import tls as tls

from evstream.emulator.http2 import Bidi, Http2EndpointThread
from evstream.sagemaker import errors
from evstream.sagemaker._http2_async import async_bedrock_http2_client, async_http2_client
from evstream.sagemaker.http2 import InputValidationError, SendTimeout, StreamReset

COUNT = 1000


def client(server: Http2EndpointThread, ca: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return async_http2_client(**local(server, ca, **kwargs))


async def send_all(
    stream, messages: list[bytes], first_echo: asyncio.Event | None = None, **members: str
) -> bool:  # type: ignore[no-untyped-def]
    """With ``first_echo``, the second half is sent only once an answer has been read: interleaved."""
    for index, message in enumerate(messages):
        if first_echo is not None and index == len(messages) // 2:
            await asyncio.wait_for(first_echo.wait(), 30)
        await stream.send(message, **members)
    await stream.close_input()
    return True


def test_echo_thousand_each_way_interleaved(endpoint: Http2EndpointThread, ca_file: str) -> None:
    messages = [b"message %d" % i for i in range(COUNT)]

    async def main() -> tuple[list[dict[str, object]], dict[str, object]]:
        async with client(endpoint, ca_file) as runtime:
            stream = await runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="echo")
            async with stream:
                first_echo = asyncio.Event()
                sending = asyncio.ensure_future(send_all(stream, messages, first_echo, data_type="BINARY"))
                received = []
                async for event in stream:
                    first_echo.set()
                    received.append(event["PayloadPart"])
                await sending
                return received, stream.response

    received, response = asyncio.run(main())
    assert [part["Bytes"] for part in received] == messages
    assert all(part["DataType"] == "BINARY" for part in received)
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert last_exchange(endpoint) == (COUNT, COUNT, True, "")


def test_conversation_thousand_turns(endpoint: Http2EndpointThread, ca_file: str) -> None:
    async def main() -> list[bytes]:
        async with client(endpoint, ca_file) as runtime:
            stream = await runtime.invoke_endpoint_with_bidirectional_stream(
                EndpointName="chat", ModelQueryString="mode=conversation&parts=1"
            )
            async with stream:
                assert (await stream.wait_response())["ResponseMetadata"]["HTTPStatusCode"] == 200
                first_reply = asyncio.Event()
                turns = [b"hello %d" % i for i in range(COUNT)]
                sending = asyncio.ensure_future(
                    send_all(stream, turns, first_reply, completion_state="COMPLETE")
                )
                replies = []
                async for event in stream:
                    first_reply.set()
                    replies.append(event["PayloadPart"]["Bytes"])
                await sending
                return replies

    assert asyncio.run(main()) == [b"turn %d: hello %d" % (i + 1, i) for i in range(COUNT)]
    assert last_exchange(endpoint) == (COUNT, COUNT, True, "")


@pytest.mark.parametrize(
    ("query", "cls"),
    [
        ("fault=model-stream-error&after=1", errors.ModelStreamError),
        ("fault=internal-stream-failure&after=1", errors.InternalStreamFailure),
        ("fault=reset&after=1", StreamReset),
        ("fault=service-unavailable", errors.ServiceUnavailable),
        ("fault=model-error", errors.ModelError),
    ],
)
def test_faults(endpoint: Http2EndpointThread, ca_file: str, query: str, cls: type) -> None:
    async def main() -> list[bytes]:
        received: list[bytes] = []
        async with client(endpoint, ca_file) as runtime:
            stream = await runtime.invoke_endpoint_with_bidirectional_stream(
                EndpointName="fault", ModelQueryString=query
            )
            async with stream:
                if "after" in query:
                    await stream.send(b"a")
                    await stream.send(b"b")
                with pytest.raises(cls):
                    async for event in stream:
                        received.append(event["PayloadPart"]["Bytes"])
        return received

    assert asyncio.run(main()) == ([b"a"] if "after" in query else [])


def test_stall_is_an_event_timeout(endpoint: Http2EndpointThread, ca_file: str) -> None:
    from botocore.config import Config

    async def main() -> None:
        runtime = client(endpoint, ca_file, config=Config(read_timeout=0.5))
        stream = await runtime.invoke_endpoint_with_bidirectional_stream(
            EndpointName="stall", ModelQueryString="fault=stall&after=1&stall=5"
        )
        async with stream:
            await stream.send(b"a")
            await stream.send(b"b")
            assert (await stream.__anext__())["PayloadPart"]["Bytes"] == b"a"
            with pytest.raises(errors.EventTimeout):
                await stream.__anext__()
        await runtime.close()

    asyncio.run(main())


def test_tampered_event_signature(endpoint: Http2EndpointThread, ca_file: str) -> None:
    async def main() -> None:
        async with client(endpoint, ca_file) as runtime:
            stream = await runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="tamper")
            async with stream:
                await stream.send(b"good")
                assert (await stream.__anext__())["PayloadPart"]["Bytes"] == b"good"
                stream._signer._chain.prior = "11" * 32
                await stream.send(b"bad")
                with pytest.raises(InputValidationError, match="signature"):
                    await stream.__anext__()

    asyncio.run(main())
    assert "does not match" in endpoint.endpoint.exchanges[-1].error


def test_consumer_that_stops_reading_holds_memory_bounded(
    tls: tuple[ssl.SSLContext, str], ca_file: str
) -> None:
    async def main() -> tuple[int, int]:
        with Http2EndpointThread(ssl=tls[0], credentials=CREDENTIALS) as server:
            runtime = client(server, ca_file, window=65536, max_inflight=65536)
            sent = 0
            stream = await runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="flood")
            async with stream:
                with pytest.raises(SendTimeout):
                    for _ in range(10_000):
                        await stream.send(b"y" * 16384, timeout=1.0)
                        sent += 1
                buffered = stream._core.buffered
            await runtime.close()
            return sent, buffered

    sent, buffered = asyncio.run(main())
    assert sent < 64
    assert buffered * 16384 <= 65536 + 2 * 16384


def test_many_concurrent_streams_share_a_connection(tls: tuple[ssl.SSLContext, str], ca_file: str) -> None:
    async def main() -> tuple[list[list[bytes]], int]:
        with Http2EndpointThread(ssl=tls[0], credentials=CREDENTIALS) as server:
            async with client(server, ca_file) as runtime:

                async def one(i: int) -> list[bytes]:
                    stream = await runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="many")
                    async with stream:
                        sending = asyncio.ensure_future(
                            send_all(stream, [b"%d-%d" % (i, j) for j in range(20)])
                        )
                        out = [event["PayloadPart"]["Bytes"] async for event in stream]
                        await sending
                        return out

                results = await asyncio.gather(*(one(i) for i in range(50)))
            return list(results), server.endpoint.accepted_connections

    results, connections = asyncio.run(main())
    assert results == [[b"%d-%d" % (i, j) for j in range(20)] for i in range(50)]
    assert connections == 1


def test_bedrock(endpoint: Http2EndpointThread, ca_file: str) -> None:
    async def main() -> list[bytes]:
        runtime = async_bedrock_http2_client(**local(endpoint, ca_file))
        stream = await runtime.invoke_model_with_bidirectional_stream(modelId="amazon.nova-sonic-v1:0")
        async with stream:
            sending = asyncio.ensure_future(send_all(stream, [b"chunk %d" % i for i in range(50)]))
            chunks = [event["chunk"]["bytes"] async for event in stream]
            await sending
        with behaving(endpoint, Bidi(fault="internal-stream-failure", after=0)):
            stream = await runtime.invoke_model_with_bidirectional_stream(modelId="m")
            async with stream:
                with pytest.raises(errors.InternalStreamFailure) as info:
                    await stream.__anext__()
        assert info.value.response["Error"]["Code"] == "internalServerException"
        await runtime.close()
        return chunks

    assert asyncio.run(main()) == [b"chunk %d" % i for i in range(50)]


def test_credentials_refreshed_off_the_event_loop(endpoint: Http2EndpointThread, ca_file: str) -> None:
    import datetime
    import threading

    import botocore.credentials
    import botocore.session

    refreshed_on: list[str] = []

    def metadata(seconds: int) -> dict[str, object]:
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
        keys = {"access_key": "AKIDHTTP2", "secret_key": "http2-secret", "token": None}
        return {**keys, "expiry_time": expiry.isoformat()}

    def refresh() -> dict[str, object]:
        refreshed_on.append(threading.current_thread().name)
        return metadata(3600)

    session = botocore.session.Session()
    # Expiring within botocore's advisory window: the next use refreshes them.
    session._credentials = botocore.credentials.RefreshableCredentials.create_from_metadata(
        metadata=metadata(60), refresh_using=refresh, method="test"
    )

    async def main() -> tuple[list[bytes], str]:
        runtime = async_http2_client(
            endpoint_url=endpoint.url, verify=ca_file, region_name="us-west-2", session=session
        )
        stream = await runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="refresh")
        async with stream:
            await stream.send(b"fresh")
            await stream.close_input()
            out = [event["PayloadPart"]["Bytes"] async for event in stream]
        await runtime.close()
        return out, threading.current_thread().name

    out, loop_thread = asyncio.run(main())
    assert out == [b"fresh"]
    assert refreshed_on and loop_thread not in refreshed_on  # the expiring credentials were renewed elsewhere
