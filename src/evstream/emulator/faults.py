"""The faults the endpoint injects: HTTP errors and stalls before the stream, broken frames inside it."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import struct
import zlib
from typing import TYPE_CHECKING, Any

from .. import encode
from .events import exception_frame, payload_part
from .http1 import ChunkedSender, HTTPError, chunk
from .recording import AttemptCounter

if TYPE_CHECKING:
    from .workloads import Behavior

__all__ = ["FAULTS", "HTTP_FAULTS", "STREAM_FAULTS", "pre_stream_fault", "stream_fault"]

# Faults before the stream (an HTTP error or a stall before the response headers) and inside it
# (after `after` PayloadParts).
HTTP_FAULTS: dict[str, tuple[int, str, str]] = {
    "validation": (400, "ValidationError", "Emulated validation error"),
    "model-error": (424, "ModelError", "Received server error (500) from primary with message"),
    "service-unavailable": (503, "ServiceUnavailable", "Emulated service unavailable"),
    "internal-failure": (500, "InternalFailure", "Emulated internal failure"),
    "throttling": (400, "ThrottlingException", "Rate exceeded"),
}
STREAM_FAULTS = (
    "model-stream-error",  # :exception-type=ModelStreamError with ErrorCode
    "internal-stream-failure",  # :exception-type=InternalStreamFailure
    "error-event",  # unmodelled :message-type=error
    "truncate",  # a frame cut in half, then a clean end of the chunked body
    "disconnect",  # the connection closed without the terminating chunk
    "stall",  # no bytes for `stall` seconds, then the rest
    "corrupt",  # a frame whose message CRC is wrong
    "huge-length",  # a prelude claiming a 1 GiB frame
    "garbage",  # bytes that are not a frame at all
    "reset",  # the connection reset (TCP RST) in the middle of the body
)
FAULTS = (*HTTP_FAULTS, "stall-headers", *STREAM_FAULTS)

# The same HTTP faults as Bedrock Runtime names them.
_BEDROCK_ERRORS = {
    "ValidationError": (400, "ValidationException"),
    "ModelError": (424, "ModelErrorException"),
    "ServiceUnavailable": (503, "ServiceUnavailableException"),
    "InternalFailure": (500, "InternalServerException"),
    "ThrottlingException": (429, "ThrottlingException"),
}


async def pre_stream_fault(
    behavior: Behavior, body: bytes, attempts: AttemptCounter, *, bedrock: bool = False
) -> Behavior:
    """Raise or stall for a fault before the stream; returns the behavior for the stream itself."""
    if not behavior.fault:
        return behavior
    # Attempts are told apart by body, so a client's retries see the fault `fault_times` times.
    if behavior.fault_times >= 0 and attempts.count(body) > behavior.fault_times:
        return dataclasses.replace(behavior, fault="")
    if behavior.fault == "stall-headers":
        await asyncio.sleep(behavior.stall)
        return dataclasses.replace(behavior, fault="")
    if behavior.fault not in HTTP_FAULTS:
        return behavior
    status, error_type, message = HTTP_FAULTS[behavior.fault]
    if bedrock:
        status, error_type = _BEDROCK_ERRORS[error_type]
        if error_type == "ModelErrorException":
            raise HTTPError(status, error_type, message, originalStatusCode=500, resourceName="model")
        raise HTTPError(status, error_type, message)
    if error_type == "ModelError":
        raise HTTPError(
            status,
            error_type,
            message,
            OriginalStatusCode=500,
            OriginalMessage="model container failed",
            LogStreamArn="arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/emulator",
        )
    raise HTTPError(status, error_type, message)


def _exception(behavior: Behavior, bedrock: bool) -> bytes:
    fault = behavior.fault
    body: dict[str, Any]
    if fault == "model-stream-error" and bedrock:
        body = {
            "message": "Emulated model stream error",
            "originalStatusCode": 500,
            "originalMessage": "model failed",
        }
        return exception_frame("modelStreamErrorException", body)
    if fault == "internal-stream-failure" and bedrock:
        return exception_frame("internalServerException", {"message": "Emulated internal server error"})
    if fault == "model-stream-error":
        body = {"Message": "Emulated model stream error", "ErrorCode": behavior.error_code}
        return exception_frame("ModelStreamError", body)
    if fault == "internal-stream-failure":
        return exception_frame("InternalStreamFailure", {"Message": "Emulated internal stream failure"})
    headers = {
        ":message-type": "error",
        ":error-code": "EmulatedError",
        ":error-message": "Emulated unmodelled error",
    }
    return encode(headers)


async def stream_fault(sender: ChunkedSender, behavior: Behavior, bedrock: bool = False) -> str:
    """Inject the fault: "continue" the stream, "ended" (body ended cleanly) or "dropped"."""
    fault = behavior.fault
    writer = sender.writer
    await sender.flush()
    if fault == "stall":
        await asyncio.sleep(behavior.stall)
        return "continue"
    if fault == "truncate":
        frame = payload_part(b"cut short")
        writer.write(chunk(frame[: len(frame) // 2]) + b"0\r\n\r\n")
        await writer.drain()
        return "ended"  # the HTTP body itself ended cleanly: the connection stays usable
    if fault == "disconnect":
        writer.close()
        return "dropped"
    if fault == "reset":
        sock = writer.get_extra_info("socket")
        if sock is not None:  # linger 0: close() sends RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return "dropped"
    if fault == "garbage":
        writer.write(chunk(b"this is not an event stream frame, just text"))
        await writer.drain()
        return "continue"
    if fault == "corrupt":
        corrupted = bytearray(payload_part(b"corrupted payload"))
        corrupted[-6] ^= 0xFF
        writer.write(chunk(bytes(corrupted)))
        await writer.drain()
        return "continue"
    if fault == "huge-length":  # a valid prelude for a 1 GiB frame; a decoder must refuse it up front
        prelude = (1 << 30).to_bytes(4, "big") + (0).to_bytes(4, "big")
        writer.write(chunk(prelude + zlib.crc32(prelude).to_bytes(4, "big")))
        await writer.drain()
        writer.close()
        return "dropped"
    # Real SageMaker ends the stream after an in-stream exception, with a clean end of the body.
    writer.write(chunk(_exception(behavior, bedrock)) + b"0\r\n\r\n")
    await writer.drain()
    return "ended"
