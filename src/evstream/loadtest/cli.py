"""``python -m evstream loadtest``: arguments, the run (steps x clients), progress and output."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from ..emulator.latency import Distribution, distribution
from ..emulator.loops import LOOPS, resolve_loop
from .templates import BEDROCK_FAMILIES, STREAM_FORMATS, TEMPLATES

if TYPE_CHECKING:
    from .distributed import Pool
    from .measure import StepResult
    from .runner import Target
    from .workload import Workload

# The parser is built for every `python -m evstream` command: the runners, the client and the report
# are imported only when a load test runs.

__all__ = ["add_loadtest_arguments", "add_loadtest_command", "run_cli"]

# Templates whose local-endpoint streams are exactly one token per event.
ONE_PER_EVENT = ("tgi", "lmi")
LOCAL_PROFILE = {"ttft": "normal:200ms,20ms", "itl": "normal:20ms,4ms"}
_LOCAL_KEYS = {"aws_access_key_id": "AKIDLOADTEST", "aws_secret_access_key": "local-endpoint"}


def _numbers(kind: type) -> Any:
    def parse(text: str) -> list[Any]:
        values = [kind(v) for v in text.split(",") if v.strip()]
        if not values or any(v <= 0 for v in values):
            raise ValueError(text)
        return values

    parse.__name__ = f"list of {kind.__name__}s > 0"
    return parse


def _count_distribution(text: str) -> Distribution:
    return Distribution.parse(text, durations=False)


_count_distribution.__name__ = "token count distribution"


def add_loadtest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Measure a streaming endpoint's time to first token (TTFT), inter-token latency (ITL), end-to-end "
        "latency and throughput at each concurrency (or request rate), with a client that measures itself. "
        "Example: python -m evstream loadtest --local   (a short run against the local endpoint)."
    )
    parser.add_argument("endpoint", nargs="?", help="SageMaker endpoint name, or Bedrock model id")
    where = parser.add_argument_group("endpoint")
    where.add_argument("--local", action="store_true", help="start the local endpoint with an emulated model")
    where.add_argument("--endpoint-url", help="e.g. http://127.0.0.1:8080 for `python -m evstream serve`")
    where.add_argument("--region")
    where.add_argument("--profile")
    where.add_argument("--content-type", default="application/json")
    where.add_argument("--ttft", type=distribution, default=LOCAL_PROFILE["ttft"], help="--local: model TTFT")
    where.add_argument("--itl", type=distribution, default=LOCAL_PROFILE["itl"], help="--local: model ITL")
    load = parser.add_argument_group("workload")
    load.add_argument(
        "--template", choices=TEMPLATES, default="tgi", help="request body format / Bedrock family"
    )
    load.add_argument("--prompts", help="JSONL file of prompts (prompt, optional max_tokens)")
    load.add_argument("--input-tokens", type=_count_distribution, default="32", help="e.g. normal:512,64")
    load.add_argument("--output-tokens", type=_count_distribution, default="64", help="e.g. uniform:64,256")
    load.add_argument(
        "--count",
        choices=("auto", "parse", "events"),
        default="auto",
        help="count tokens by parsing each record, or one per event (no parsing on the client's hot "
        "path); auto: events with --local and tgi or lmi (one token per event, each stamped), else parse",
    )
    load.add_argument(
        "--bidirectional",
        action="store_true",
        help="bidirectional streams over HTTP/2 (SageMaker InvokeEndpointWithBidirectionalStream, Bedrock "
        "InvokeModelWithBidirectionalStream): each stream sends its body as one input event, ends its "
        "input and times the output events; --local: the same generation, profile and stamps as a "
        "response stream's",
    )
    steps = parser.add_mutually_exclusive_group()
    steps.add_argument("--concurrency", type=_numbers(int), help="streams at once per step, e.g. 1,8,64,512")
    steps.add_argument("--rate", type=_numbers(float), help="open loop: Poisson arrivals per second per step")
    timing = parser.add_argument_group("steps")
    timing.add_argument(
        "--duration", type=float, default=None, help="measured seconds per step (default 10; 4 with --local)"
    )
    timing.add_argument("--requests", type=int, default=0, help="measure this many requests per step instead")
    timing.add_argument(
        "--warmup", type=float, default=None, help="seconds before measuring (default 2; 1 with --local)"
    )
    timing.add_argument(
        "--drain-timeout", type=float, default=60.0, help="max seconds for measured requests to end"
    )
    timing.add_argument("--max-in-flight", type=int, default=10_000, help="open loop: cap on streams at once")
    timing.add_argument("--seed", type=int, default=0)
    scale = parser.add_argument_group("clients")
    scale.add_argument("--workers", type=int, default=1, help="client processes (each an asyncio client)")
    scale.add_argument("--ray", metavar="auto|local|ADDRESS", help="run the workers as Ray actors")
    scale.add_argument(
        "--loop", choices=LOOPS, default="auto", help="the clients' event loop (auto: uvloop when installed)"
    )
    scale.add_argument(
        "--pin",
        choices=("auto", "on", "off"),
        default="auto",
        help="--local on Linux: run the local endpoint on one CPU and the client on the others (when "
        "they fit), so that the client does not wait behind the endpoint's sends on one CPU; auto: when "
        "the machine is otherwise idle at the start (pinned, neither can move to a CPU another "
        "process left free)",
    )
    scale.add_argument(
        "--compare-boto3", action="store_true", help="also run each step with boto3, one thread per stream"
    )
    out = parser.add_argument_group("output")
    out.add_argument("--json", metavar="FILE", help="write the results as JSON (- for stdout)")
    out.add_argument("--csv", metavar="FILE", help="write one row per step and client as CSV (- for stdout)")
    out.add_argument("--plot", metavar="PNG", help="chart latency percentiles against throughput")
    out.add_argument("--quiet", action="store_true", help="no live progress")


def raise_open_file_limit(needed: int, strict: bool = True) -> None:
    """Lift the soft limit on open files (inherited by the local endpoint) to what the run needs (as
    far as the hard limit allows when not ``strict``)."""
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        if strict:
            raise ValueError(f"{needed} open files needed, the hard limit is {hard} (ulimit -Hn)")
        needed = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


@contextlib.contextmanager
def _endpoint(args: argparse.Namespace) -> Iterator[tuple[dict[str, Any], int, str]]:
    """boto3.client keyword arguments for the endpoint (and the local endpoint running, with --local),
    the local endpoint's process id (0: none) and where it and the client run (see :func:`cpus_apart`)."""
    if not args.local:
        kwargs = {"region_name": args.region, "endpoint_url": args.endpoint_url}
        if args.profile:
            try:
                import boto3

                session = boto3.Session(profile_name=args.profile)
                credentials = session.get_credentials()
            except Exception as exc:  # no boto3, botocore's ProfileNotFound, credential-source errors
                raise ValueError(f"profile {args.profile!r}: {exc}") from None
            kwargs["region_name"] = args.region or session.region_name
            if credentials is not None:
                frozen = credentials.get_frozen_credentials()
                kwargs.update(
                    aws_access_key_id=frozen.access_key,
                    aws_secret_access_key=frozen.secret_key,
                    aws_session_token=frozen.token,
                )
        yield {k: v for k, v in kwargs.items() if v is not None}, 0, ""
        return
    from ..emulator import EmulatorProcess
    from .placement import cpus_apart

    stream_format = local_stream_format(args.template)
    http2 = ("--http2-port", "0", "--http2-mode", "generate") if args.bidirectional else ()
    profile = ("--ttft", args.ttft, "--itl", args.itl, "--stamp")
    with EmulatorProcess("--format", stream_format, *profile, *http2) as endpoint:
        local: dict[str, Any] = {"region_name": "us-east-1", "endpoint_url": endpoint.url, **_LOCAL_KEYS}
        if args.bidirectional:
            local.update(endpoint_url=endpoint.listening.http2_url, verify=endpoint.listening.ca_file)
        with cpus_apart(endpoint.process.pid, args.workers, args.pin) as placement:
            yield local, endpoint.process.pid, placement


def _workload(args: argparse.Namespace, local: bool) -> Workload:
    from .workload import Workload, load_prompts

    prompts = load_prompts(args.prompts, round(args.output_tokens.mean)) if args.prompts else None
    workload = Workload(
        template=args.template,
        prompts=prompts,
        input_tokens=args.input_tokens,
        output_tokens=args.output_tokens,
        emulator={} if local else None,
        count=args.count
        if args.count != "auto"
        else ("events" if local and args.template in ONE_PER_EVENT else "parse"),
    )
    if local:
        workload.stream_format = local_stream_format(args.template)
    return workload


def local_stream_format(template: str) -> str:
    """The format the local endpoint answers a template's requests in."""
    from ..emulator import FORMATS

    stream_format = STREAM_FORMATS[template]
    if stream_format not in FORMATS:
        raise ValueError(f"the local endpoint does not emit {stream_format!r} streams; try --template tgi")
    return stream_format


class StepProgress:
    """The CLI's progress bar (:class:`evstream.bench.progress.Progress`), one unit per step and client;
    a step run in this process also shows its phase, streams and requests done."""

    def __init__(self, steps: int, enabled: bool) -> None:
        from ..bench.progress import Progress

        self.bar = Progress(steps, sys.stderr, enabled=enabled)
        self.label = ""
        self.seconds = 1.0
        self.started = 0.0
        self.tick: Any = None

    def start(self, label: str, seconds: float) -> None:
        self.label, self.seconds, self.started = label, seconds, time.monotonic()
        self.tick = self.bar.step(label)

    def __call__(self, phase: str, result: StepResult, in_flight: int) -> None:
        self.bar.label = (
            f"{self.label}: {phase}, {in_flight} streams, {result.requests} done, {result.error_count} errors"
        )
        self.tick(min(0.99, (time.monotonic() - self.started) / self.seconds))

    def finish(self) -> None:
        self.bar.finish_step()

    def close(self) -> None:
        self.bar.close()


def _pool(args: argparse.Namespace, target: Target, progress: StepProgress) -> Pool:
    from .distributed import LocalPool, RayPool, SinglePool

    if args.ray:
        return RayPool(target, args.workers, args.ray, args.loop)
    if args.workers > 1:
        return LocalPool(target, args.workers, args.loop)
    return SinglePool(target, args.loop, progress)


def run(args: argparse.Namespace, out: TextIO) -> list[StepResult]:
    """Every step with evstream (and boto3 beside it with --compare-boto3); returns the results."""
    from .. import sagemaker
    from .bidi import BidiClient
    from .distributed import run_split
    from .runner import Step, Target
    from .threads import Boto3Target, run_step_threads

    if not args.local and not args.endpoint:
        raise ValueError("name an endpoint (or model id), or use --local")
    if args.bidirectional and args.compare_boto3:
        raise ValueError("boto3 has no bidirectional streams (botocore cannot send input events)")
    loads: list[int | float] = args.rate or args.concurrency or ([1, 16, 64] if args.local else [1, 8, 64])
    duration = args.duration if args.duration is not None else (4.0 if args.local else 10.0)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.local else 2.0)
    if args.workers < 1:
        raise ValueError("--workers must be >= 1")
    resolve_loop(args.loop)  # a loop that is not installed fails now, not in every worker
    steps = [
        Step(
            concurrency=0 if args.rate else int(load),
            rate=float(load) if args.rate else 0.0,
            duration=duration if not args.requests else 0.0,
            requests=args.requests,
            warmup=warmup,
            drain_timeout=args.drain_timeout,
            max_in_flight=args.max_in_flight,
            seed=args.seed + n,
        )
        for n, load in enumerate(loads)
    ]
    for step in steps:  # a step too small to split fails now, not after the workers started
        step.split(args.workers, 0)
    peak = int(max(loads)) if not args.rate else args.max_in_flight
    raise_open_file_limit(2 * peak + 512, strict=not args.rate)
    progress = StepProgress(len(steps) * (2 if args.compare_boto3 else 1), not args.quiet)
    results: list[StepResult] = []
    with _endpoint(args) as (endpoint, endpoint_pid, placement):
        name = args.endpoint or ("local-model" if args.template not in BEDROCK_FAMILIES else "local.model-v1")
        workload = _workload(args, args.local)
        pool_size = max(64, peak // max(1, args.workers) + 8)
        client: Any
        if args.bidirectional:
            client = BidiClient(workload.bedrock, **endpoint)
            params: dict[str, Any] = {}
        else:
            make = sagemaker.bedrock_async_client if workload.bedrock else sagemaker.async_client
            client = make(max_pool_connections=pool_size, max_attempts=1, **endpoint)
            params = {} if workload.bedrock else {"ContentType": args.content_type}
        target = Target(client, name, workload, params, endpoint_pid)
        boto3_target = (
            Boto3Target(name, workload, params, endpoint_pid=endpoint_pid, **endpoint)
            if args.compare_boto3
            else None
        )
        out.write(_banner(args, workload, loads, duration, warmup, placement))
        out.flush()
        with _pool(args, target, progress) as pool, contextlib.closing(progress):
            for step in steps:
                load = f"{step.rate:g}/s" if step.rate else str(step.concurrency)
                progress.start(f"evstream at {load}", step.warmup + step.duration)
                results.append(run_split(pool, step))
                progress.finish()
                if boto3_target is not None:
                    progress.start(f"boto3 at {load}", step.warmup + step.duration)
                    results.append(run_step_threads(boto3_target, step))
                    progress.finish()
    return results


def _banner(
    args: argparse.Namespace,
    workload: Workload,
    loads: list[Any],
    duration: float,
    warmup: float,
    placement: str,
) -> str:
    what = "local endpoint" if args.local else (args.endpoint or "")
    profile = f" (emulated model: TTFT {args.ttft}, ITL {args.itl}, send-time stamps)" if args.local else ""
    if args.bidirectional:
        what = f"bidirectional streams (HTTP/2) of {what}"
    kind = "requests/s" if args.rate else "concurrency"
    span = f"{args.requests} requests" if args.requests else f"{duration:g} s"
    workers = f"Ray {args.ray}, {args.workers} worker(s)" if args.ray else f"{args.workers} process(es)"
    return (
        f"Load test of {what}{profile}\n"
        f"{kind} {','.join(f'{v:g}' for v in loads)}; per step {warmup:g} s warm-up then {span}; "
        f"template {args.template}, output tokens {workload.output_tokens}, tokens counted by "
        f"{'event' if workload.count == 'events' else 'parsing each record'}; "
        f"{workers} on {resolve_loop(args.loop)}; "
        f"{os.cpu_count()} CPUs{f' ({placement})' if placement else ''}, "
        f"Python {platform.python_version()}\n\n"
    )


def run_cli(args: argparse.Namespace) -> int:
    from .report import csv_text, dump_json, plot, table

    started = time.time()
    try:
        _check_outputs(args)
        results = run(args, sys.stdout)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, (RuntimeError, OSError)) else 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    table(results, sys.stdout)
    meta = {
        "endpoint": "local" if args.local else args.endpoint,
        "template": args.template,
        "started": started,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "workers": args.workers,
        "ray": args.ray,
        "argv": sys.argv[1:],
    }
    try:
        if args.json:
            with _output(args.json) as handle:
                dump_json(results, meta, handle)
        if args.csv:
            with _output(args.csv) as handle:
                handle.write(csv_text(results))
        if args.plot:
            plot(results, args.plot, title=f"evstream loadtest: {meta['endpoint']} ({args.template})")
            print(f"chart: {args.plot}")
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    bad = sum(r.error_count for r in results)
    return 1 if bad and not any(r.requests for r in results) else 0


def _check_outputs(args: argparse.Namespace) -> None:
    """Before a run that may take minutes: the outputs can be written, the chart can be drawn."""
    for path in (args.json, args.csv, args.plot):
        if path and path != "-" and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise ValueError(f"cannot write {path}: no such directory")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("--plot needs matplotlib (pip install 'evstream[bench]')") from None


@contextlib.contextmanager
def _output(path: str) -> Iterator[TextIO]:
    if path == "-":
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8") as handle:
        yield handle


def add_loadtest_command(subparsers: Any) -> None:
    """Register ``loadtest`` on the ``python -m evstream`` subcommands."""
    parser = subparsers.add_parser(
        "loadtest", help="measure TTFT, inter-token latency and throughput of an endpoint under load"
    )
    add_loadtest_arguments(parser)
    parser.set_defaults(func=run_cli)
