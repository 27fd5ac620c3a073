"""Proxy mode: front a model container (``POST /invocations``) as SageMaker does.

Each body chunk the container sends becomes a ``PayloadPart``. An ``https`` upstream is reached over TLS
with certificate and host name verification; any other scheme is refused when the endpoint is built.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Mapping

from .events import exception_frame, payload_part
from .http1 import HTTPError, Limits, chunk, response_head, write_simple
from .recording import RecordedRequest

__all__ = ["Upstream"]

_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-5][0-9][0-9])(?: [^\r\n]*)?\r?\n")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_FORWARDED = ("x-amzn-sagemaker-custom-attributes", "x-amzn-sagemaker-inference-id")


class _UpstreamBroken(Exception):
    """The container's response is not well-formed HTTP/1.1."""


# What a container's broken answer raises while it is read (ValueError: a line over the reader's limit).
_BROKEN = (_UpstreamBroken, ConnectionError, asyncio.IncompleteReadError, ValueError)


async def _collect(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    parts, size = [], 0
    async for data in chunks:
        size += len(data)
        if size > limit:
            raise _UpstreamBroken
        parts.append(data)
    return b"".join(parts)


class Upstream:
    """A model container reached at ``url`` (``http://`` or ``https://``)."""

    def __init__(
        self, url: str, *, ssl_context: ssl.SSLContext | None = None, timeout: float = 300.0
    ) -> None:
        split = urllib.parse.urlsplit(url)
        if split.scheme not in ("http", "https") or not split.hostname:
            raise ValueError(f"the upstream must be an http:// or https:// URL, not {url!r}")
        self.url = url
        self.host = split.hostname
        self.port = split.port or (443 if split.scheme == "https" else 80)
        # A context with verification on: the default when the caller gives none.
        self.ssl = (ssl_context or ssl.create_default_context()) if split.scheme == "https" else None
        self.timeout = timeout

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(
                    self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None
                ),
                self.timeout,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            message = f"cannot reach the container: {exc or 'timed out'}"
            raise HTTPError(424, "ModelError", message, OriginalStatusCode=502) from None

    async def forward(
        self,
        request: RecordedRequest,
        writer: asyncio.StreamWriter,
        *,
        whole: bool,
        response_headers: Mapping[str, str],
        limits: Limits,
    ) -> bool:
        """Send the request on and relay the answer; returns whether the client connection is reusable."""
        up_reader, up_writer = await self._open()
        try:
            forward = {
                "Host": f"{self.host}:{self.port}",
                "Content-Type": request.headers.get("content-type", "application/json"),
                "Accept": request.headers.get("x-amzn-sagemaker-accept", "*/*"),
                "Content-Length": str(len(request.body)),
                "Connection": "close",
            }
            forward.update({name: request.headers[name] for name in _FORWARDED if name in request.headers})
            head = "".join(f"{k}: {v}\r\n" for k, v in forward.items())
            up_writer.write(f"POST /invocations HTTP/1.1\r\n{head}\r\n".encode("latin-1") + request.body)
            try:
                status, up_headers = await asyncio.wait_for(_response_head(up_reader, limits), self.timeout)
            except (*_BROKEN, asyncio.TimeoutError):
                raise HTTPError(
                    424, "ModelError", "the container sent no valid response", OriginalStatusCode=502
                ) from None
            content_type = up_headers.get("content-type", "application/octet-stream")
            chunks = _body(up_reader, up_headers, limits)
            if status != 200 or whole:
                try:
                    body = await _collect(chunks, limits.max_body)
                except _BROKEN:
                    raise HTTPError(
                        424, "ModelError", "the container's response was cut short", OriginalStatusCode=502
                    ) from None
                if status != 200:
                    raise HTTPError(
                        424,
                        "ModelError",
                        f"Received client error ({status}) from primary with message",
                        OriginalStatusCode=status,
                        OriginalMessage=body.decode("utf-8", "replace"),
                    )
                write_simple(writer, 200, body, content_type, response_headers)
                return True
            headers = {
                **response_headers,
                "X-Amzn-SageMaker-Content-Type": content_type,
                "Content-Type": "application/vnd.amazon.eventstream",
                "Transfer-Encoding": "chunked",
            }
            writer.write(response_head(200, headers))
            try:
                async for data in chunks:
                    writer.write(chunk(payload_part(data)))
                    await writer.drain()
            except _BROKEN:
                error = {"Message": "The model container closed the stream", "ErrorCode": "StreamBroken"}
                writer.write(chunk(exception_frame("ModelStreamError", error)) + b"0\r\n\r\n")
                await writer.drain()
                return False
            writer.write(b"0\r\n\r\n")
            return True
        finally:
            up_writer.close()


async def _response_head(reader: asyncio.StreamReader, limits: Limits) -> tuple[int, dict[str, str]]:
    match = _STATUS_LINE.fullmatch(await reader.readline())
    if match is None:
        raise _UpstreamBroken
    headers: dict[str, str] = {}
    size = 0
    while (raw := await reader.readline()) not in (b"\r\n", b"\n"):
        size += len(raw)
        if not raw.endswith(b"\n") or size > limits.max_head_bytes or len(headers) >= limits.max_header_count:
            raise _UpstreamBroken
        name, colon, value = raw.rstrip(b"\r\n").partition(b":")
        value = value.strip(b" \t")
        if not colon or not name or name[:1] in (b" ", b"\t") or _CONTROL.search(name + value):
            raise _UpstreamBroken
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1")
    return int(match.group(1)), headers


async def _body(
    reader: asyncio.StreamReader, headers: Mapping[str, str], limits: Limits
) -> AsyncIterator[bytes]:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = (await reader.readline()).split(b";")[0].strip()
            try:
                n = int(size_line, 16)
            except ValueError:
                raise _UpstreamBroken from None
            if n < 0:
                raise _UpstreamBroken
            if n == 0:
                return
            data = await reader.readexactly(n)
            await reader.readexactly(2)
            yield data
    elif "content-length" in headers:
        length = headers["content-length"]
        if not length.isdigit() or int(length) > limits.max_body:
            raise _UpstreamBroken
        yield await reader.readexactly(int(length))
    else:
        while data := await reader.read(65536):
            yield data
