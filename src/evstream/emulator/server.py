"""The endpoint: connections, routing and the handlers of each operation (HTTP/1.1 on asyncio)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl as ssl_module
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping

from .events import bedrock_chunk, payload_part
from .faults import STREAM_FAULTS, pre_stream_fault, stream_fault
from .http1 import ChunkedSender, HTTPError, Limits, read_request, response_head, write_error, write_simple
from .latency import Pacing, clock_ns, pace, paced_parts, sleep_until, stamp_record
from .listener import Listener
from .proxy import Upstream
from .recording import AttemptCounter, RecordedRequest, RequestLog
from .sigv4 import payload_hash, verify_sigv4
from .workloads import CONTENT_TYPES, Behavior, generate_records, split_parts

__all__ = ["Emulator"]

_log = logging.getLogger("evstream.emulator")
_SAGEMAKER_ROUTES = ("invocations-response-stream", "invocations")
_BEDROCK_ROUTES = ("invoke-with-response-stream", "invoke")


def _request_id() -> str:
    return str(uuid.uuid4())


class Emulator(Listener):
    """The endpoint, run on the current event loop (see :class:`EmulatorThread` for a thread).

    With ``credentials`` (access key id -> secret key) every request on every route must carry a valid
    SigV4 signature over the body the endpoint received, scoped to ``region`` (any when None); nothing
    of an unauthenticated request is kept or acted on.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        behavior: Behavior | None = None,
        credentials: Mapping[str, str] | None = None,
        region: str | None = None,
        upstream: str | None = None,
        upstream_ssl: ssl_module.SSLContext | None = None,
        variant: str = "AllTraffic",
        record: int = 1000,
        record_bytes: int = 64 * 1024 * 1024,
        limits: Limits | None = None,
        ssl: ssl_module.SSLContext | None = None,
        on_request: Callable[[RecordedRequest, int, float], None] | None = None,
    ) -> None:
        super().__init__(host, port, ssl)
        self.on_request = on_request  # called with each answered request, its status and its seconds
        self.behavior = behavior or Behavior()
        self.credentials = dict(credentials) if credentials else None
        self.region = region
        self.upstream = Upstream(upstream, ssl_context=upstream_ssl) if upstream else None
        self.variant = variant
        self.limits = limits or Limits()
        self.read_limit = self.limits.max_head_bytes
        self.requests = RequestLog(record, record_bytes)
        self.open_connections = 0
        self._attempts = AttemptCounter()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open_connections += 1
        try:
            while await self._one_request(reader, writer):
                pass
        except HTTPError as exc:  # the request could not be read: answer, then close
            write_error(writer, exc, _request_id(), close=True)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except Exception as exc:  # a bug: answer and close, no client-driven traceback
            _log.error("request failed: %r", exc)
            write_error(
                writer, HTTPError(500, "InternalFailure", "internal error"), _request_id(), close=True
            )
        finally:
            self.open_connections -= 1
            writer.close()

    def _authenticate(self, request: RecordedRequest, service: str) -> None:
        if self.credentials is None:
            return
        problem = verify_sigv4(
            request.method,
            request.path,
            request.headers,
            payload_hash(request.body),
            self.credentials,
            service=service,
            region=self.region,
        )
        request.signature_valid = problem is None
        if problem is not None:
            # Kept for inspection without the body: an unauthenticated client cannot fill memory.
            self.requests.append(dataclasses.replace(request, body=b""))
            raise HTTPError(403, "InvalidSignatureException", problem)

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        request = await read_request(reader, writer, self.limits)
        if request is None:
            return False
        keep_alive = request.headers.get("connection", "").lower() != "close"
        started, status = time.monotonic(), 200
        try:
            keep_alive = await self._route(request, writer) and keep_alive
        except HTTPError as exc:
            status = exc.status
            write_error(writer, exc, _request_id())
        await writer.drain()
        if self.on_request is not None:
            self.on_request(request, status, time.monotonic() - started)
        return keep_alive

    async def _route(self, request: RecordedRequest, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; returns False when the connection cannot carry another one."""
        path = urllib.parse.urlsplit(request.path).path
        parts = path.strip("/").split("/")
        bedrock = len(parts) == 3 and parts[0] == "model" and parts[2] in _BEDROCK_ROUTES
        self._authenticate(request, "bedrock" if bedrock else "sagemaker")
        self.requests.append(request)
        if request.method == "GET" and path == "/ping":
            write_simple(writer, 200, b"", "text/plain")
            return True
        if request.method != "POST":
            raise HTTPError(404, "UnknownOperationException", f"No route for {request.method}")
        if path == "/invocations":
            await self._container(writer, self._behavior(request))
            return True
        if len(parts) == 3 and parts[0] == "endpoints" and parts[2] in _SAGEMAKER_ROUTES:
            whole = parts[2] == "invocations"
            if self.upstream is not None:
                headers = self._response_headers(request)
                return await self.upstream.forward(
                    request, writer, whole=whole, response_headers=headers, limits=self.limits
                )
            behavior = await pre_stream_fault(self._behavior(request), request.body, self._attempts)
            if whole:
                self._invoke(request, writer, behavior)
                return True
            return await self._stream(request, writer, behavior)
        if bedrock:  # Bedrock Runtime: the same framing, chunk events carrying base64 in JSON
            behavior = await pre_stream_fault(
                self._behavior(request), request.body, self._attempts, bedrock=True
            )
            if parts[2] == "invoke":
                body = b"".join(generate_records(dataclasses.replace(behavior, straddle=False)))
                headers = {"x-amzn-RequestId": _request_id()}
                write_simple(writer, 200, body, CONTENT_TYPES[behavior.format], headers)
                return True
            return await self._stream(request, writer, behavior, bedrock=True)
        raise HTTPError(404, "UnknownOperationException", f"No route for {path}")

    def _behavior(self, request: RecordedRequest) -> Behavior:
        try:
            return self.behavior.for_request(request.body)
        except ValueError as exc:
            raise HTTPError(400, "ValidationError", str(exc)) from None

    def _response_headers(self, request: RecordedRequest) -> dict[str, str]:
        headers = {
            "x-amzn-RequestId": _request_id(),
            "X-Amzn-Invoked-Production-Variant": request.headers.get(
                "x-amzn-sagemaker-target-variant", self.variant
            ),
        }
        attributes = request.headers.get("x-amzn-sagemaker-custom-attributes")
        if attributes is not None:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = attributes
        headers["Date"] = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
        return headers

    def _invoke(self, request: RecordedRequest, writer: asyncio.StreamWriter, behavior: Behavior) -> None:
        body = b"".join(generate_records(dataclasses.replace(behavior, straddle=False)))
        write_simple(writer, 200, body, CONTENT_TYPES[behavior.format], self._response_headers(request))

    async def _container(self, writer: asyncio.StreamWriter, behavior: Behavior) -> None:
        """The model container API: raw records as chunked HTTP, as a TGI or LMI container sends them."""
        headers = {"Content-Type": CONTENT_TYPES[behavior.format], "Transfer-Encoding": "chunked"}
        writer.write(response_head(200, headers))
        sender = ChunkedSender(writer)
        interval = 1.0 / behavior.rate if behavior.rate else 0.0
        start_ns = clock_ns()
        for n, record in enumerate(generate_records(behavior)):
            if interval:
                await sleep_until(start_ns + round(n * interval * 1e9))
            await sender.frame(record)
        await sender.end()

    async def _stream(
        self,
        request: RecordedRequest,
        writer: asyncio.StreamWriter,
        behavior: Behavior,
        *,
        bedrock: bool = False,
    ) -> bool:
        content_type = CONTENT_TYPES[behavior.format]
        if bedrock:
            headers = {"x-amzn-RequestId": _request_id(), "X-Amzn-Bedrock-Content-Type": content_type}
        else:
            headers = {**self._response_headers(request), "X-Amzn-SageMaker-Content-Type": content_type}
        headers["Content-Type"] = "application/vnd.amazon.eventstream"
        headers["Transfer-Encoding"] = "chunked"
        writer.write(response_head(200, headers))
        pacing = Pacing.of(behavior.ttft, behavior.itl, behavior.rate, behavior.seed)
        sender = ChunkedSender(
            writer,
            group=behavior.chunk_events,
            cut=behavior.chunk_bytes,
            coalesce=behavior.coalesce and pacing is None,
        )
        in_stream_fault = behavior.fault in STREAM_FAULTS
        event = bedrock_chunk if bedrock else payload_part
        if (
            pacing is not None
            and not in_stream_fault
            and behavior.chunk_events == 1
            and not behavior.chunk_bytes
        ):
            whole, sent = await pace(writer, paced_parts(behavior), pacing, event, behavior.stamp)
            request.events += sent
            return whole
        start_ns = clock_ns()
        for n, part in enumerate(split_parts(behavior) if pacing is None else paced_parts(behavior)):
            if in_stream_fault and n == behavior.after:
                outcome = await stream_fault(sender, behavior, bedrock)
                if outcome != "continue":
                    return outcome == "ended"
            if pacing is not None:
                await sender.flush()
                await sleep_until(start_ns + round(pacing.next_due(n) * 1e9))
            await sender.frame(event(stamp_record(part) if behavior.stamp else part))
            request.events += 1
            if n % 256 == 255:  # let other streams run when the socket never pushes back
                await asyncio.sleep(0)
        if in_stream_fault and behavior.after >= behavior.tokens:
            outcome = await stream_fault(sender, behavior, bedrock)
            if outcome != "continue":
                return outcome == "ended"
        await sender.end()
        return True
