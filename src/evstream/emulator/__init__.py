"""A local SageMaker Runtime endpoint that streams real event-stream frames.

Only the standard library (asyncio) is used, so the endpoint controls every byte it sends: HTTP chunk
boundaries, frames cut short, stalls. It serves:

* ``POST /endpoints/{name}/invocations-response-stream``: event-stream frames over chunked HTTP, with the
  response headers of the real service (a boto3 ``sagemaker-runtime`` client works unchanged against it);
* ``POST /endpoints/{name}/invocations``: the whole generation in one response;
* ``POST /model/{id}/invoke-with-response-stream`` and ``/invoke``: the same for Bedrock Runtime;
* ``POST /invocations`` and ``GET /ping``: the model container API, streaming the raw token bytes chunked,
  so one emulator can stand in for a container behind another one running in proxy mode.

What a request produces is set by the server's :class:`Behavior`, overridden per request by an
``"emulator"`` object in a JSON request body (``{"inputs": "...", "emulator": {"tokens": 5}}``);
``parameters.max_new_tokens`` sets the token count as TGI does.

The package, by concern: ``http1`` (request parsing, limits, timeouts, response writing), ``server``
(routing and handlers), ``http2`` (the HTTP/2 listener), ``listener`` (what both listeners share),
``workloads`` (tokens, container formats, parts), ``latency`` (pacing), ``events`` (the frames),
``faults``, ``sigv4`` (signature checks, the endpoint's keys), ``proxy`` (an upstream container),
``recording`` (bounded request log and retry bookkeeping), ``process`` (child process and thread runners,
the start-up lines of ``serve``), ``loops`` (the event loop: uvloop when installed).

With keys (``credentials``, or ``serve`` with its keys in the environment) it is safe to expose: see
:class:`Emulator` and :class:`Limits`.
"""

from __future__ import annotations

from .faults import FAULTS, HTTP_FAULTS, STREAM_FAULTS
from .http1 import Limits
from .process import EmulatorProcess, EmulatorThread
from .recording import RecordedRequest
from .server import Emulator
from .sigv4 import verify_sigv4
from .workloads import FORMATS, Behavior, generate_records, generate_text, split_parts

__all__ = [
    "FAULTS",
    "FORMATS",
    "HTTP_FAULTS",
    "STREAM_FAULTS",
    "Behavior",
    "Emulator",
    "EmulatorProcess",
    "EmulatorThread",
    "Limits",
    "RecordedRequest",
    "generate_records",
    "generate_text",
    "split_parts",
    "verify_sigv4",
]
