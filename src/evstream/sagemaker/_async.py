"""The asyncio client: the same API as the sync client with ``await`` / ``async for``, on connections of
its own (:mod:`._aio_connection`), pooled per event loop. Works on any loop; uvloop is faster."""

from __future__ import annotations

import asyncio
import os
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .. import lines as _lines
from ._aio_connection import Connection
from ._base import (
    EVENTSTREAM,
    SAGEMAKER,
    BaseClient,
    Operation,
    StreamState,
    first_byte_timeout,
    response_dict,
)
from .config import Request
from .errors import (
    ConnectionFailed,
    ConnectTimeout,
    ParamValidationError,
    ProxyConnectionFailed,
    SageMakerRuntimeError,
    TLSFailed,
)
from .reader import BodyReader, may_retry

if TYPE_CHECKING:
    from ..formats import AsyncRecordStream, AsyncTokenStream

__all__ = ["AsyncClient", "AsyncEventStream"]


class _Pool:
    """The connections of one client in one event loop of one process: at most ``limit`` open, idle ones
    reused (last in, first out)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.loop = loop
        self.pid = os.getpid()
        self.limit = limit
        self.idle: list[Connection] = []
        self.slots = asyncio.Semaphore(limit)

    def idle_connection(self) -> Connection | None:
        while self.idle:
            connection = self.idle.pop()
            if not connection.lost:
                return connection
        return None

    def put(self, connection: Connection) -> None:
        if connection.reusable() and len(self.idle) < self.limit and self.pid == os.getpid():
            connection.park()
            self.idle.append(connection)
        else:
            connection.close()

    def close(self) -> None:
        idle, self.idle = self.idle, []
        for connection in idle:
            connection.close()


class AsyncClient(BaseClient):
    """``await invoke_endpoint_with_response_stream(...)``; ``async for`` over ``response["Body"]``.

    ``max_pool_connections`` caps the connections open at once (as in aiobotocore): a stream waits for a
    free one. Connections belong to the event loop that opened them: used from another loop (or after
    ``fork``) the client starts a new pool and lets the old one go without touching it.
    """

    def __init__(self, botocore_client: Any = None, **kwargs: Any) -> None:
        super().__init__(botocore_client, **kwargs)
        self._pool_state: _Pool | None = None
        self._endpoint_tls: ssl.SSLContext | bool | None = False  # False: not made yet

    def _pool(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pool_state
        if pool is None or pool.loop is not loop or pool.pid != os.getpid():
            pool = self._pool_state = _Pool(loop, self._limits.max_pool_connections)
        return pool

    async def close(self) -> None:
        pool, self._pool_state = self._pool_state, None
        if pool is not None and pool.pid == os.getpid() and pool.loop is asyncio.get_running_loop():
            pool.close()

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

    # -- transport ----------------------------------------------------------------------------------

    async def _headers(self, request: Request, attempt: int, call: dict[str, Any] | None) -> dict[str, str]:
        control = self._control
        if control.credentials_refresh_needed() or control.retry_mode == "adaptive":
            # Refreshing credentials can mean an STS or IMDS round trip, and the adaptive rate limiter
            # may wait for a token: not on the event loop.
            return await asyncio.to_thread(self._sign, request, attempt, call)
        return self._sign(request, attempt, call)

    def _tls(self) -> ssl.SSLContext | None:
        """TLS to the endpoint as botocore verifies it (CA bundle, client certificate); None for http://."""
        if self._endpoint_tls is False:
            self._endpoint_tls = self._control.ssl_context()
        return self._endpoint_tls  # type: ignore[return-value]

    async def _connect(self, loop: asyncio.AbstractEventLoop, url: str) -> tuple[Connection, Any]:
        """A new connection to the endpoint (through the proxy botocore would use), and that proxy."""
        config = self._limits
        proxy = self._control.proxy_for(url)
        try:
            connection = await asyncio.wait_for(self._open(loop, proxy), config.connect_timeout)
        except asyncio.TimeoutError:
            raise ConnectTimeout(
                f"No connection within connect_timeout={config.connect_timeout:g} s", config.connect_timeout
            ) from None
        except SageMakerRuntimeError:
            raise
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise TLSFailed(f"TLS to {self.endpoint_url} failed: {exc}", endpoint_url=url) from None
        except OSError as exc:
            if proxy is not None:
                raise ProxyConnectionFailed(
                    f"Could not connect through the proxy {proxy.url}: {exc}"
                ) from None
            raise ConnectionFailed(f"Could not connect to {self.endpoint_url}: {exc}") from None
        transport_socket = connection.transport.get_extra_info("socket")
        if transport_socket is not None:
            for level, option, value in self._control.socket_options:
                transport_socket.setsockopt(level, option, value)
        return connection, proxy

    async def _open(self, loop: asyncio.AbstractEventLoop, proxy: Any) -> Connection:
        tls = self._tls()
        if proxy is None:
            _, connection = await loop.create_connection(
                lambda: Connection(loop),
                self._hostname,
                self._port,
                ssl=tls,
                server_hostname=self._hostname if tls is not None else None,
            )
            return connection
        parts = urllib.parse.urlsplit(proxy.url)
        proxy_tls: Any = None
        if parts.scheme == "https":
            proxy_tls = proxy.ssl_context or ssl.create_default_context()
        try:
            _, connection = await loop.create_connection(
                lambda: Connection(loop),
                parts.hostname,
                parts.port or (443 if proxy_tls else 80),
                ssl=proxy_tls,
                server_hostname=parts.hostname if proxy_tls is not None else None,
            )
        except (OSError, ssl.CertificateError) as exc:  # TLS to the proxy included: the proxy's failure
            raise ProxyConnectionFailed(
                f"Could not connect to the proxy {proxy.url}: {exc}", proxy_url=proxy.url
            ) from None
        if tls is None or (proxy.use_forwarding_for_https and proxy_tls is not None):
            return connection  # requests are forwarded: absolute URLs, the proxy's headers on each
        # A tunnel: CONNECT, then TLS to the endpoint inside it.
        authority = f"{self._hostname}:{self._port}"
        head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in proxy.headers.items())
        try:
            connection.send((head + "\r\n").encode("latin-1"), "CONNECT")
            while connection.head is None and connection.error is None:
                await connection.wait()
            if connection.head is None or connection.head.status != 200:
                status = connection.head.status if connection.head else connection.error
                raise ProxyConnectionFailed(f"The proxy {proxy.url} did not open a tunnel: {status}")
            connection.park()
            connection.transport = await loop.start_tls(
                connection.transport, connection, tls, server_hostname=self._hostname
            )
        except BaseException:
            connection.close()
            raise
        return connection


def _request_bytes(request: Request, target: str, host: str, headers: dict[str, str], extra: Any) -> bytes:
    lines = [f"{request.method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    for name, value in (*headers.items(), *(extra or {}).items()):
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ParamValidationError(f"Invalid header {name!r}: CR and LF cannot be in a header")
        lines.append(f"{name}: {value}\r\n")
    if not any(name.lower() == "content-length" for name in headers):
        lines.append(f"Content-Length: {len(request.body)}\r\n")
    lines.append("\r\n")
    try:
        return "".join(lines).encode("latin-1") + request.body
    except UnicodeEncodeError as exc:
        raise ParamValidationError(f"A header holds a character HTTP/1.1 cannot carry: {exc}") from None


class AsyncEventStream(StreamState):
    """``async for event in stream`` gives boto3's events; :meth:`payloads`, :meth:`text`, :meth:`lines`,
    :meth:`sse`, :meth:`json` and :meth:`tokens` are the typed views. Cancelling the task that reads,
    ``close()`` or leaving ``async with`` releases the connection."""

    _client: AsyncClient

    def __init__(self, client: AsyncClient, request: Request, operation: Operation = SAGEMAKER) -> None:
        super().__init__(client, request, operation)
        self._connection: Connection | None = None
        self._batch: list[Any] = []  # the events being handed out: close() empties it
        self._pool: _Pool | None = None

    # -- opening and retries ------------------------------------------------------------------------

    async def _start(self) -> None:
        while True:
            self._attempts += 1
            try:
                await self._attempt()
            except SageMakerRuntimeError as exc:
                self._release(False)
                delay = self._client._retry_delay(self._attempts, exc, self._call)
                if delay is None:
                    raise
                await asyncio.sleep(delay)
                continue
            except BaseException:
                self._release(False)
                raise
            return

    async def _attempt(self) -> None:
        """Send the request once; return with a 200 event stream's head read, or raise its error."""
        client = self._client
        request = self._request
        headers = await client._headers(request, self._attempts, self._call)
        pool = client._pool()
        await pool.slots.acquire()
        self._pool = pool
        loop = pool.loop
        url = client.endpoint_url + request.path[len(client._base_path) :]
        connection = pool.idle_connection()
        proxy = None
        if connection is None:
            connection, proxy = await client._connect(loop, url)
        elif connection.forwarding:
            proxy = client._control.proxy_for(url)
        self._connection = connection
        target = request.path
        extra = None
        if proxy is not None and (client._scheme == "http" or proxy.use_forwarding_for_https):
            target, extra = url, proxy.headers  # forwarded through the proxy: an absolute URL
            connection.forwarding = True
        connection.send(_request_bytes(request, target, client._host_header, headers, extra), request.method)
        timeout = client._limits.first_byte_timeout
        connection.deadline = loop.time() + timeout
        connection.on_timeout = lambda: first_byte_timeout(timeout, None)
        while connection.head is None and connection.error is None:
            await connection.wait()
        if connection.error is not None:
            raise connection.error
        head = connection.head
        assert head is not None
        if head.status != 200 or EVENTSTREAM not in head.lowered.get("content-type", ""):
            body = await connection.read_error_body()
            raise client._http_error(head.status, head.headers, body, self._attempts)
        self._status = head.status
        self._headers = head.headers
        self.request_id = head.lowered.get("x-amzn-requestid")

    def _release(self, reuse: bool) -> None:
        connection, self._connection = self._connection, None
        pool, self._pool = self._pool, None
        if connection is not None:
            if reuse and pool is not None:
                pool.put(connection)
            else:
                connection.close()
        if pool is not None:
            pool.slots.release()

    # -- reading ------------------------------------------------------------------------------------

    def payloads(self) -> AsyncIterator[bytes]:
        """The raw bytes of each PayloadPart."""
        return self._iterate(False)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate(True)

    async def _iterate(self, boto_shape: bool) -> AsyncIterator[Any]:
        config = self._client._limits
        while True:
            connection = self._connection
            if connection is None:
                if self._closed:
                    return
                raise RuntimeError("the stream was already consumed")
            head = connection.head
            assert head is not None
            reader = BodyReader(
                self._operation,
                framing=head.framing,
                length=head.length,
                boto_shape=boto_shape,
                request_id=self.request_id,
            )
            loop = connection.loop
            connection.deadline = loop.time() + config.first_byte_timeout
            connection.on_timeout = self._timeout_error
            finished = False
            try:
                connection.read_body(reader)
                while True:
                    if self._closed:
                        return
                    if connection.ready:
                        batch = self._batch = connection.take()
                        self._delivered = True
                        for event in batch:
                            yield event
                        # The deadline runs from the last delivered event, not from the last byte.
                        connection.deadline = loop.time() + config.event_timeout
                    elif connection.error is not None:
                        raise connection.error
                    elif connection.finished:
                        break
                    else:
                        await connection.wait()
                finished = True
                return
            except SageMakerRuntimeError as exc:
                self._release(False)
                delay = None
                if not self._closed and may_retry(exc, self._delivered):
                    delay = self._client._retry_delay(self._attempts, exc, self._call)
                if delay is None:
                    raise
            finally:
                if self._connection is connection:
                    self._release(finished)
            # Nothing was delivered yet: send the request again.
            await asyncio.sleep(delay)
            await self._start()

    def text(self) -> AsyncIterator[str]:
        return _lines.aiter_text(self.payloads())

    def lines(self, *, max_line_length: int = _lines.MAX_LINE_LENGTH) -> AsyncIterator[str]:
        return _lines.aiter_lines(self.payloads(), max_line_length=max_line_length)

    def sse(self, *, max_line_length: int = _lines.MAX_LINE_LENGTH) -> AsyncIterator[_lines.SSEEvent]:
        return _lines.aiter_sse(self.payloads(), max_line_length=max_line_length)

    def json(
        self, *, format: str | None = None, max_line_length: int = _lines.MAX_LINE_LENGTH
    ) -> AsyncRecordStream:
        return _lines.aiter_json(self.payloads(), format=format, max_line_length=max_line_length)

    def tokens(self, *, format: str | None = None) -> AsyncTokenStream:
        return _lines.aiter_tokens(self.payloads(), format=format)

    # -- closing ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop reading and release the connection (closed if the body was not read to its end)."""
        self._closed = True
        self._batch.clear()  # events of the batch in hand are not handed out after close()
        self._release(False)

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
