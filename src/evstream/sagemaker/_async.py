"""The asyncio client: aiohttp, the same API as the sync client with ``await`` / ``async for``."""

from __future__ import annotations

import asyncio
import os
import ssl as ssl_module
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiohttp

from .. import Decoder, TruncatedStream
from .. import lines as _lines
from ._base import (
    EVENTSTREAM,
    SAGEMAKER,
    BaseClient,
    Operation,
    StreamState,
    event_timeout,
    first_byte_timeout,
    incomplete_frame,
    non_payload,
    response_dict,
    unexpected_response,
)
from .config import Config, Request
from .errors import (
    ConnectionFailed,
    ConnectTimeout,
    IncompleteStream,
    SageMakerRuntimeError,
)

__all__ = ["AsyncBedrockClient", "AsyncClient", "AsyncEventStream"]

_CONNECT_TIMEOUT_ERRORS: tuple[type[BaseException], ...] = tuple(
    cls for cls in (getattr(aiohttp, "ConnectionTimeoutError", None),) if cls is not None
)


class AsyncClient(BaseClient):
    """``await invoke_endpoint_with_response_stream(...)``; ``async for`` over ``response["Body"]``.

    The aiohttp session is made on first use, in the running loop. ``max_pool_connections`` caps the
    connections open at once (as in aiobotocore): a stream waits for a free one. After ``fork`` the
    child makes its own session.
    """

    def __init__(self, config: Config, session: Any = None) -> None:
        super().__init__(config, session)
        self._http: aiohttp.ClientSession | None = None
        self._pid = os.getpid()
        self._loop: asyncio.AbstractEventLoop | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.config,)

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._http is not None and (self._pid != os.getpid() or self._loop is not loop):
            # Forked, or used from another event loop (asyncio.run per task): the old session's
            # connections belong to another process or loop. Let go of them without closing, which
            # would need that loop.
            self._http.detach()
            self._http = None
        self._pid = os.getpid()
        self._loop = loop
        if self._http is None or self._http.closed:
            ssl: Any = True
            if self._scheme == "https":
                # TLS is verified unless verify=False, against the bundle boto3 would use.
                ssl = ssl_module.create_default_context(cafile=self._ca_bundle) if self._ca_bundle else False
            connector = aiohttp.TCPConnector(
                limit=self.config.max_pool_connections, limit_per_host=0, ssl=ssl
            )
            self._http = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None and not self._http.closed:
            if self._pid == os.getpid() and self._loop is asyncio.get_running_loop():
                await self._http.close()
            else:
                self._http.detach()
        self._http = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def invoke_endpoint_with_response_stream(self, **params: Any) -> dict[str, Any]:
        """As the sync client's; ``response["Body"]`` is an :class:`AsyncEventStream`."""
        request = self._prepare(params, "invocations-response-stream")
        return await self._invoke(request, SAGEMAKER)

    async def _invoke(self, request: Request, operation: Operation) -> dict[str, Any]:
        stream = AsyncEventStream(self, request, operation)
        await stream._start()
        return response_dict(operation, stream, stream._status, stream._headers, stream._attempts)

    async def _send(self, request: Request) -> aiohttp.ClientResponse:
        signer = self._signer
        if signer is not None and signer.refresh_needed():
            # Refreshing credentials can mean an STS or IMDS round trip: not on the event loop.
            await asyncio.to_thread(signer.refresh)
        headers = self._sign(request)
        config = self.config
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=config.connect_timeout, sock_read=config.first_byte_timeout
        )
        try:
            return await self._session().request(
                request.method,
                self.endpoint_url + request.path[len(self._base_path) :],
                data=request.body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            )
        except _CONNECT_TIMEOUT_ERRORS as exc:
            raise ConnectTimeout(
                f"No connection within connect_timeout={config.connect_timeout:g} s: {exc}",
                config.connect_timeout,
            ) from None
        except asyncio.TimeoutError as exc:
            if str(exc).startswith("Connection timeout"):  # aiohttp before 3.10 has no subclass for it
                raise ConnectTimeout(
                    f"No connection within connect_timeout={config.connect_timeout:g} s",
                    config.connect_timeout,
                ) from None
            raise first_byte_timeout(config.first_byte_timeout, None) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ConnectionFailed(f"Could not connect to {self.endpoint_url}: {exc}") from None


class AsyncBedrockClient(AsyncClient):
    """``await invoke_model_with_response_stream(...)`` with boto3's ``bedrock-runtime`` names and shape."""

    async def invoke_model_with_response_stream(self, **params: Any) -> dict[str, Any]:
        from .bedrock import BEDROCK, build_request

        request = build_request(params)
        request.path = self._base_path + request.path
        return await self._invoke(request, BEDROCK)


class AsyncEventStream(StreamState):
    """``async for event in stream`` gives boto3's events; :meth:`payloads`, :meth:`text`, :meth:`lines`,
    :meth:`sse`, :meth:`json` and :meth:`tokens` are the typed views. Cancelling the task that reads,
    ``close()`` or leaving ``async with`` releases the connection."""

    _client: AsyncClient

    def __init__(self, client: AsyncClient, request: Request, operation: Operation = SAGEMAKER) -> None:
        super().__init__(client, request, operation)
        self._response: aiohttp.ClientResponse | None = None

    async def _start(self) -> None:
        config = self._client.config
        while True:
            self._attempts += 1
            try:
                response = await self._client._send(self._request)
                if response.status != 200 or EVENTSTREAM not in response.headers.get("Content-Type", ""):
                    raise await self._http_error(response)
            except SageMakerRuntimeError as exc:
                if not exc.retryable or self._attempts >= config.max_attempts:
                    raise
                await asyncio.sleep(self._client._backoff(self._attempts))
                continue
            self._response = response
            self._status = response.status
            self._headers = dict(response.headers)
            self.request_id = response.headers.get("x-amzn-RequestId")
            return

    async def _http_error(self, response: aiohttp.ClientResponse) -> SageMakerRuntimeError:
        try:
            body = await response.content.read(1 << 20)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            body = b""
        response.release()
        return unexpected_response(response.status, response.headers, body)

    def payloads(self) -> AsyncIterator[bytes]:
        """The raw bytes of each PayloadPart."""
        return self._iterate(False)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate(True)

    async def _iterate(self, boto_shape: bool) -> AsyncIterator[Any]:
        config = self._client.config
        while True:
            reader = self._read(boto_shape)
            try:
                async for item in reader:
                    yield item
                return
            except SageMakerRuntimeError as exc:
                self._abort()
                if (
                    self._delivered
                    or not exc.retryable
                    or self._attempts >= config.max_attempts
                    or self._closed
                ):
                    raise
            finally:
                await reader.aclose()  # at once, not when the garbage collector finds it
            await asyncio.sleep(self._client._backoff(self._attempts))
            await self._start()

    async def _read(self, boto_shape: bool) -> AsyncGenerator[Any, None]:
        response = self._response
        if response is None:
            if self._closed:
                return
            raise RuntimeError("the stream was already consumed")
        readany = response.content.readany
        feed = Decoder().feed
        request_id = self.request_id
        waiting = not self._delivered
        finished = False
        operation = self._operation
        event_type, outer, inner, decode = (
            operation.event_type,
            operation.outer,
            operation.inner,
            operation.decode,
        )
        try:
            while True:
                chunk = await readany()
                if not chunk:
                    break
                for message in feed(chunk):
                    headers = message.headers
                    if headers.get(":event-type") == event_type:
                        if waiting:
                            waiting = False
                            self._delivered = True
                            self._set_read_timeout(response, self._client.config.event_timeout)
                        payload = message.payload if decode is None else decode(message.payload)
                        yield {outer: {inner: payload}} if boto_shape else payload
                    else:
                        error = non_payload(headers, message.payload, request_id)
                        if error is not None:
                            raise error
            feed.__self__.close()  # type: ignore[attr-defined]
            finished = True
        except asyncio.TimeoutError:
            config = self._client.config
            if waiting:
                raise first_byte_timeout(config.first_byte_timeout, request_id) from None
            raise event_timeout(config.event_timeout, request_id) from None
        except TruncatedStream as exc:
            raise incomplete_frame(exc, request_id) from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, OSError) as exc:
            raise IncompleteStream(f"The response body was cut short: {exc}", request_id=request_id) from None
        finally:
            if finished:
                self._response = None
                response.release()
            elif self._response is response and not self._closed:
                # Cancelled, or the consumer stopped: a half-read body cannot be reused.
                self._abort()

    @staticmethod
    def _set_read_timeout(response: aiohttp.ClientResponse, timeout: float) -> None:
        connection = response.connection
        protocol = connection.protocol if connection is not None else None
        if protocol is not None and hasattr(protocol, "read_timeout"):
            protocol.read_timeout = timeout
            # The timer running now was set with first_byte_timeout; restart it with the new value, or
            # a stall right after the first event would wait the longer timeout out.
            reschedule = getattr(protocol, "_reschedule_timeout", None)
            if reschedule is not None:
                reschedule()

    def text(self) -> AsyncIterator[str]:
        return _lines.aiter_text(self.payloads())

    def lines(self, *, max_line_length: int = _lines.MAX_LINE_LENGTH) -> AsyncIterator[str]:
        return _lines.aiter_lines(self.payloads(), max_line_length=max_line_length)

    def sse(self, *, max_line_length: int = _lines.MAX_LINE_LENGTH) -> AsyncIterator[_lines.SSEEvent]:
        return _lines.aiter_sse(self.payloads(), max_line_length=max_line_length)

    def json(self, *, max_line_length: int = _lines.MAX_LINE_LENGTH) -> AsyncIterator[Any]:
        return _lines.aiter_json(self.payloads(), max_line_length=max_line_length)

    def tokens(self) -> AsyncIterator[str]:
        return _lines.aiter_tokens(self.payloads())

    def _abort(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            response.close()

    def close(self) -> None:
        """Stop reading and release the connection (closed if the body was not read to its end)."""
        self._closed = True
        self._abort()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
