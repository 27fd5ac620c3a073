"""Load tests of streaming endpoints: TTFT, inter-token latency, end-to-end latency and throughput
under concurrency, measured by a client that measures itself.

``python -m evstream loadtest ENDPOINT`` (or ``--local``) drives it from the command line; the same
pieces make a Python API::

    from evstream import sagemaker
    from evstream.loadtest import Step, Target, Workload, run_step_sync

    client = sagemaker.async_client(region_name="us-west-2", max_pool_connections=128)
    result = run_step_sync(Target(client, "my-llm", Workload("tgi")), Step(concurrency=64, duration=30))
    print(result.ttft.percentile(99) / 1e6, "ms")

Bidirectional streams (HTTP/2): ``Target(BidiClient(bedrock=False, region_name="us-west-2"), "my-llm",
Workload("tgi"))`` sends each body as one input event and times the output events.

The modules, by concern: ``workload`` (prompts, request bodies per container format and Bedrock
family, token counting), ``runner`` (one asyncio client process running a step), ``bidi``
(bidirectional streams), ``threads`` (the boto3 thread-per-stream reference client), ``measure``
(what a step measured, stream timing, the client's own load), ``histogram`` (exactly mergeable
latency histograms), ``distributed`` (local processes and Ray actors), ``placement`` (the local
endpoint's and the client's CPUs), ``report`` (table, JSON, CSV, chart), ``cli``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bidi import BidiClient
    from .distributed import LocalPool, RayPool, SinglePool, run_split
    from .histogram import Histogram
    from .measure import StepResult, WorkerLoad
    from .runner import Step, Target, run_step, run_step_sync
    from .templates import BEDROCK_FAMILIES, SAGEMAKER_FORMATS, TEMPLATES
    from .threads import Boto3Target, run_step_threads
    from .workload import Prompt, TokenCounter, Workload, load_prompts

# Imported on first use: `python -m evstream` builds the loadtest parser for every command.
_WHERE = {
    "BidiClient": "bidi",
    "LocalPool": "distributed",
    "RayPool": "distributed",
    "SinglePool": "distributed",
    "run_split": "distributed",
    "Histogram": "histogram",
    "StepResult": "measure",
    "WorkerLoad": "measure",
    "Step": "runner",
    "Target": "runner",
    "run_step": "runner",
    "run_step_sync": "runner",
    "BEDROCK_FAMILIES": "templates",
    "SAGEMAKER_FORMATS": "templates",
    "TEMPLATES": "templates",
    "Boto3Target": "threads",
    "run_step_threads": "threads",
    "Prompt": "workload",
    "TokenCounter": "workload",
    "Workload": "workload",
    "load_prompts": "workload",
}

__all__ = [
    "BEDROCK_FAMILIES",
    "SAGEMAKER_FORMATS",
    "TEMPLATES",
    "BidiClient",
    "Boto3Target",
    "Histogram",
    "LocalPool",
    "Prompt",
    "RayPool",
    "SinglePool",
    "Step",
    "StepResult",
    "Target",
    "TokenCounter",
    "WorkerLoad",
    "Workload",
    "load_prompts",
    "run_split",
    "run_step",
    "run_step_sync",
    "run_step_threads",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
