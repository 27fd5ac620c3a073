"""Bidirectional streams in a load test: each stream sends its request body as one input event, ends its
input, and the output events are timed as a response stream's are.

SageMaker's ``InvokeEndpointWithBidirectionalStream`` and Bedrock's ``InvokeModelWithBidirectionalStream``
over HTTP/2 (:func:`evstream.sagemaker.async_http2_client`). The local endpoint serves both with
``serve --http2-port --http2-mode generate``: it answers the body as a response stream would (the
generation its ``"emulator"`` object asks for, paced by the latency profile, one stamped record per
event), so both kinds of stream are measured alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

__all__ = ["BidiClient", "BidiStream"]


class BidiClient:
    """An asyncio HTTP/2 client made on first use from boto3.client's arguments (``verify`` included):
    it pickles into worker processes as those arguments, where an open client could not."""

    def __init__(self, bedrock: bool, **kwargs: Any) -> None:
        self.bedrock = bedrock
        self.kwargs = kwargs
        self._client: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"bedrock": self.bedrock, "kwargs": self.kwargs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["bedrock"], **state["kwargs"])  # type: ignore[misc]

    @property
    def client(self) -> Any:
        if self._client is None:
            from ..sagemaker import http2

            make = http2.async_bedrock_http2_client if self.bedrock else http2.async_http2_client
            self._client = make(**self.kwargs)
        return self._client

    async def stream(self, name: str, body: bytes, params: dict[str, Any]) -> BidiStream:
        """Open a stream, send ``body`` as its one input event and end the input."""
        if self.bedrock:
            stream = await self.client.invoke_model_with_bidirectional_stream(modelId=name, **params)
            send: dict[str, str] = {}
            output = BidiStream(stream, "chunk", "bytes")
        else:
            stream = await self.client.invoke_endpoint_with_bidirectional_stream(EndpointName=name, **params)
            send = {"data_type": "UTF8", "completion_state": "COMPLETE"}
            output = BidiStream(stream, "PayloadPart", "Bytes")
        try:
            await stream.send(body, **send)
            await stream.close_input()
        except BaseException:
            stream.close()
            raise
        return output

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


class BidiStream:
    """The output of one bidirectional stream, as a response stream's :meth:`payloads`."""

    def __init__(self, stream: Any, event_type: str, member: str) -> None:
        self._stream = stream
        self._event_type = event_type
        self._member = member

    async def payloads(self) -> AsyncIterator[bytes]:
        event_type, member = self._event_type, self._member
        try:
            async for event in self._stream:
                part = event.get(event_type)
                if part is not None:
                    yield part[member]
        finally:
            self._stream.close()
