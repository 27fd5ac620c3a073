"""The official SageMaker Runtime HTTP2 SDK (aws-sdk-sagemaker-runtime-http2, smithy-python, Python 3.12+),
unchanged, against ``python -m evstream serve --http2-port``: a client nobody here wrote completes an
exchange, every event signature checked by the endpoint.

The SDK is only configured, as any user of a private CA would: its CRT transport is given a TLS context
that trusts the CA the endpoint printed.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest

if sys.version_info < (3, 12):
    pytest.skip("the official SDK needs Python 3.12+", allow_module_level=True)

sdk_client = pytest.importorskip("aws_sdk_sagemaker_runtime_http2.client")
sdk_config = pytest.importorskip("aws_sdk_sagemaker_runtime_http2.config")
sdk_models = pytest.importorskip("aws_sdk_sagemaker_runtime_http2.models")
crt_transport = pytest.importorskip("smithy_http.aio.crt")
pytest.importorskip("awscrt")
pytest.importorskip("h2")
pytest.importorskip("trustme")

from awscrt import io as crt_io  # noqa: E402

from evstream.emulator import EmulatorProcess  # noqa: E402

ACCESS_KEY, SECRET_KEY = "AKIDINTEROP", "interop-secret"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, str]]:
    """(HTTP/2 URL, CA file) of a `serve --http2-port 0` child checking signatures with the key above."""
    env = {"EVSTREAM_ENDPOINT_SECRET_ACCESS_KEY": SECRET_KEY}
    with EmulatorProcess("--http2-port", "0", "--access-key", ACCESS_KEY, env=env) as endpoint:
        yield endpoint.listening.http2_url, endpoint.listening.ca_file


def official_client(url: str, ca_file: str, secret: str = SECRET_KEY):  # type: ignore[no-untyped-def]
    class TrustingTransport(crt_transport.AWSCRTHTTPClient):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            options = crt_io.TlsContextOptions()
            options.override_default_trust_store_from_path(None, ca_file)
            self._tls_ctx = crt_io.ClientTlsContext(options)

    async def make():  # type: ignore[no-untyped-def]
        config = await sdk_config.AsyncSageMakerRuntimeHTTP2Config.resolve(
            endpoint_uri=url,
            region="us-west-2",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=secret,
            transport=TrustingTransport(),
        )
        return sdk_client.AsyncSageMakerRuntimeHTTP2Client(config=config)

    return make()


async def exchange(client, messages: list[bytes], query: str | None = None):  # type: ignore[no-untyped-def]
    m = sdk_models
    stream = await client.invoke_endpoint_with_bidirectional_stream(
        m.InvokeEndpointWithBidirectionalStreamInput(
            endpoint_name="interop", target_variant="AllTraffic", model_query_string=query
        )
    )

    async def send() -> None:
        for message in messages:
            part = m.RequestPayloadPart(bytes_=message, data_type="UTF8", completion_state="COMPLETE")
            await stream.input_stream.send(m.RequestStreamEventPayloadPart(value=part))
        await stream.input_stream.close()

    sending = asyncio.ensure_future(send())
    output, receiver = await stream.await_output()
    events = [event async for event in receiver]
    await sending
    return output, events


def test_official_sdk_echo(served: tuple[str, str]) -> None:
    messages = [b"interop %d" % i for i in range(200)]

    async def main():  # type: ignore[no-untyped-def]
        return await exchange(await official_client(*served), messages)

    output, events = asyncio.run(main())
    assert output.invoked_production_variant == "AllTraffic"
    assert [type(event).__name__ for event in events] == ["ResponseStreamEventPayloadPart"] * len(messages)
    assert [event.value.bytes_ for event in events] == messages
    assert {(event.value.data_type, event.value.completion_state) for event in events} == {
        ("UTF8", "COMPLETE")
    }


def test_official_sdk_every_event_signature_verified(tmp_path: object) -> None:
    # In-process, to read the endpoint's own record of what it verified.
    from evstream.emulator.http2 import Http2EndpointThread, tls_context

    context, ca_file = tls_context(str(tmp_path))
    messages = [b"signed %d" % i for i in range(100)]
    with Http2EndpointThread(ssl=context, credentials={ACCESS_KEY: SECRET_KEY}, region="us-west-2") as server:

        async def main():  # type: ignore[no-untyped-def]
            return await exchange(await official_client(server.url, ca_file), messages)

        _, events = asyncio.run(main())
        record = server.endpoint.exchanges[-1]
    assert [event.value.bytes_ for event in events] == messages
    assert (record.events_in, record.signed_end, record.error) == (100, True, "")
    assert "Credential=AKIDINTEROP/" in record.headers["authorization"]
    assert record.headers["x-amz-content-sha256"] == "STREAMING-AWS4-HMAC-SHA256-EVENTS"


def test_official_sdk_conversation(served: tuple[str, str]) -> None:
    async def main():  # type: ignore[no-untyped-def]
        return await exchange(await official_client(*served), [b"one", b"two"], "mode=conversation&parts=2")

    _, events = asyncio.run(main())
    text = b"".join(event.value.bytes_ for event in events)
    assert text == b"turn 1: oneturn 2: two"
    assert [event.value.completion_state for event in events] == ["PARTIAL", "COMPLETE"] * 2


def test_official_sdk_sees_the_modelled_stream_error(served: tuple[str, str]) -> None:
    async def main():  # type: ignore[no-untyped-def]
        return await exchange(
            await official_client(*served), [b"a", b"b"], "fault=model-stream-error&after=1"
        )

    with pytest.raises(sdk_models.ModelStreamError) as info:
        asyncio.run(main())
    assert info.value.error_code == "ModelInvocationTimeExceeded"


def test_official_sdk_with_a_wrong_key_is_refused(served: tuple[str, str]) -> None:
    async def main():  # type: ignore[no-untyped-def]
        return await exchange(await official_client(*served, secret="wrong"), [b"a"])

    with pytest.raises(Exception, match=r"403.*InvalidSignatureException"):
        asyncio.run(main())
