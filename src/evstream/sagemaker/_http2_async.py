"""The asyncio twin of :mod:`.http2`: ``await stream.send(...)``, ``async for event in stream``.

The transport is the same :class:`DuplexCore` on awscrt's threads; its ``wake`` hops onto the event loop
with ``call_soon_threadsafe``, and writes wait on their ``write_data`` futures through ``wrap_future``, so
nothing here blocks the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from typing import Any

from ._http2_ops import BEDROCK, SAGEMAKER
from .errors import FirstByteTimeout
from .event_signing import EventSigner
from .http2 import Http2Base, StreamBase

__all__ = [
    "AsyncBedrockHttp2Client",
    "AsyncBidirectionalStream",
    "AsyncHttp2Client",
    "async_bedrock_http2_client",
    "async_http2_client",
]


class AsyncBidirectionalStream(StreamBase):
    """One bidirectional stream on an event loop; the same events and errors as the sync stream."""

    def __init__(
        self, client: Http2Base, signer: EventSigner | None, loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__(client, signer)
        self._loop = loop
        self._changed = asyncio.Event()
        self._send_lock = asyncio.Lock()

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._changed.set)

    async def _wait(self, deadline: float) -> bool:
        """Wait for a change; False once ``deadline`` has passed."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            await asyncio.wait_for(self._changed.wait(), remaining)
        except asyncio.TimeoutError:
            return False
        return True

    async def send(
        self,
        data: bytes | str,
        *,
        data_type: str | None = None,
        completion_state: str | None = None,
        p: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Sign and send one input event; waits while the server is not taking input."""
        await self._write(self._message(data, data_type, completion_state, p), end=False, timeout=timeout)

    async def close_input(self, *, timeout: float | None = None) -> None:
        """Send the signed end of the input; idempotent."""
        await self._write(b"", end=True, timeout=timeout)

    async def _write(self, message: bytes, *, end: bool, timeout: float | None) -> None:
        core = self._stream
        limit = self._send_limit(timeout)
        async with self._send_lock:
            if not self._writable(end):
                return
            deadline = time.monotonic() + limit
            while (pending := core.backlog()) is not None:
                try:
                    remaining = max(0.0, deadline - time.monotonic())
                    await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(pending)), remaining)
                except asyncio.TimeoutError:
                    raise self._send_timeout(limit) from None
                except Exception as exc:
                    raise self._client._transport_error(exc) from exc
                self._raise_if_failed()
            core.write(self._frame(message, end), end=end)
        # A task sending many events must not starve the loop (the reader of the answers is on it too).
        await asyncio.sleep(0)

    @property
    def response(self) -> dict[str, Any]:
        """The response's members and metadata, once the headers have arrived (``await
        stream.wait_response()`` waits for them)."""
        core = self._stream
        if core.status == 0:
            raise RuntimeError("no response headers yet: await stream.wait_response() first")
        if core.status != 200:
            raise self._headers_failure()
        return self._client._response(core)

    async def wait_response(self) -> dict[str, Any]:
        """Wait for the response headers (``first_byte_timeout``); raises the error an error answer stands
        for."""
        core = self._stream
        timeout = self._client._target.read_timeout
        deadline = time.monotonic() + timeout
        while core.status == 0 and not core.complete:
            self._changed.clear()
            if core.status != 0 or core.complete:
                break
            if not await self._wait(deadline):
                raise FirstByteTimeout(f"No response within {timeout:g} s", timeout)
        while core.status != 200 and not core.complete:
            self._changed.clear()
            if core.complete or not await self._wait(deadline):
                break
        if core.status != 200:
            raise self._headers_failure()
        return self._client._response(core)

    def __aiter__(self) -> AsyncBidirectionalStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        core = self._stream
        if self._closed:
            raise ValueError("read from a closed stream")
        while True:
            deadline = time.monotonic() + self._client._target.read_timeout
            while True:
                self._changed.clear()
                message = core.take()
                if message is not None or core.finished:
                    break
                if not await self._wait(deadline):
                    raise self._read_timeout()
            try:
                event = self._event(message)
            except StopIteration:
                raise StopAsyncIteration from None
            if event is not None:
                return event

    async def __aenter__(self) -> AsyncBidirectionalStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class _AsyncClient(Http2Base):
    async def _open(self, params: dict[str, Any]) -> AsyncBidirectionalStream:
        loop = asyncio.get_running_loop()
        control = self._target.control
        if control.credentials_refresh_needed():  # a network call of the credential provider: not on the loop
            await loop.run_in_executor(None, control.refresh_credentials)
        request, signer = self._request(params)
        stream = AsyncBidirectionalStream(self, signer, loop)
        timeout = self._target.connect_timeout + 1
        try:
            connection = await asyncio.wait_for(asyncio.wrap_future(self._pool.acquire()), timeout)
        except asyncio.TimeoutError:
            raise self._transport_error(concurrent.futures.TimeoutError()) from None
        except Exception as exc:
            raise self._transport_error(exc) from exc
        return self._started(stream, connection, request)

    async def close(self) -> None:
        self._pool.close()

    async def __aenter__(self) -> _AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class AsyncHttp2Client(_AsyncClient):
    """SageMaker Runtime HTTP2 on asyncio; streams share HTTP/2 connections."""

    bidi_operation = SAGEMAKER

    async def invoke_endpoint_with_bidirectional_stream(self, **params: Any) -> AsyncBidirectionalStream:
        return await self._open(params)


class AsyncBedrockHttp2Client(_AsyncClient):
    """Bedrock Runtime's bidirectional operation on asyncio."""

    bidi_operation = BEDROCK

    @property
    def exceptions(self) -> Any:  # type: ignore[override]
        return self._target.client.exceptions

    async def invoke_model_with_bidirectional_stream(self, **params: Any) -> AsyncBidirectionalStream:
        return await self._open(params)


async_http2_client = AsyncHttp2Client.from_boto3
async_bedrock_http2_client = AsyncBedrockHttp2Client.from_boto3
