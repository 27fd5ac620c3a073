"""``python -m evstream``: demo, serve, invoke, decode, bench.

Each subcommand is an ``add_<name>(subparsers)`` function that registers its arguments and sets
``func``; a new subcommand (``decode``, ``bench``) is one more function in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

__all__ = ["COMMANDS", "main"]

Subparsers = Any  # argparse._SubParsersAction is private


# -- serve ------------------------------------------------------------------------------------------


def add_serve(subparsers: Subparsers) -> None:
    from .emulator import FAULTS, FORMATS
    from .emulator.latency import add_latency_arguments

    parser = subparsers.add_parser(
        "serve",
        help="run the local SageMaker-compatible streaming endpoint",
        description="A local endpoint for InvokeEndpointWithResponseStream (boto3 works against it with "
        "endpoint_url). Per request, a JSON body can override these defaults: "
        '{"inputs": "...", "emulator": {"tokens": 100, "fault": "model-stream-error", "after": 5}}.',
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (0 picks a free one; default: 8080)")
    parser.add_argument("--format", choices=FORMATS, default="tgi", help="token stream format")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per generation")
    parser.add_argument("--rate", type=float, default=0.0, help="tokens per second (0: as fast as possible)")
    add_latency_arguments(parser)
    parser.add_argument("--chunk-events", type=int, default=1, help="event-stream frames per HTTP chunk")
    parser.add_argument("--straddle", action="store_true", help="cut parts across lines and UTF-8 characters")
    parser.add_argument("--fault", choices=FAULTS, default="", help="inject this error in every response")
    parser.add_argument("--after", type=int, default=0, help="events sent before an in-stream fault")
    parser.add_argument("--access-key", help="verify SigV4 signatures made with this key id ...")
    parser.add_argument("--secret-key", help="... and this secret key")
    parser.add_argument("--upstream", help="proxy mode: URL of a model container (POST /invocations)")
    parser.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    from .emulator import Behavior, Emulator

    behavior = Behavior(
        format=args.format,
        tokens=args.tokens,
        rate=args.rate,
        chunk_events=args.chunk_events,
        straddle=args.straddle,
        fault=args.fault,
        after=args.after,
        ttft=args.ttft,
        itl=args.itl,
        stamp=args.stamp,
    )
    if bool(args.access_key) != bool(args.secret_key):
        print("--access-key and --secret-key go together", file=sys.stderr)
        return 2
    credentials = {args.access_key: args.secret_key} if args.access_key else None
    emulator = Emulator(
        args.host, args.port, behavior=behavior, credentials=credentials, upstream=args.upstream
    )

    async def run() -> None:
        await emulator.start()
        print(f"evstream endpoint listening on {emulator.url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Windows has no signal handlers in asyncio: Ctrl-C raises KeyboardInterrupt there.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            await emulator.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0


# -- invoke -----------------------------------------------------------------------------------------


def add_invoke(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "invoke",
        help="stream from an endpoint with the evstream client",
        description="Call InvokeEndpointWithResponseStream and print the output as it arrives. "
        "Credentials and region are found as boto3 finds them.",
    )
    parser.add_argument("endpoint_name")
    parser.add_argument("body", help="request body, or @FILE to read it from a file")
    parser.add_argument("--endpoint-url", help="e.g. http://127.0.0.1:8080 for `python -m evstream serve`")
    parser.add_argument("--region")
    parser.add_argument("--profile")
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument("--accept")
    parser.add_argument("--custom-attributes")
    parser.add_argument("--inference-component")
    parser.add_argument("--target-variant")
    parser.add_argument("--session-id")
    parser.add_argument(
        "--output",
        choices=("tokens", "raw", "lines", "events"),
        default="tokens",
        help="tokens: generated text (TGI/LMI/OpenAI); raw: payload bytes; lines; events: boto3's dicts",
    )
    parser.set_defaults(func=invoke)


def invoke(args: argparse.Namespace) -> int:
    from . import sagemaker

    body: bytes
    if args.body.startswith("@"):
        with open(args.body[1:], "rb") as handle:
            body = handle.read()
    else:
        body = args.body.encode()
    params: dict[str, Any] = {
        "EndpointName": args.endpoint_name,
        "Body": body,
        "ContentType": args.content_type,
    }
    for name, value in (
        ("Accept", args.accept),
        ("CustomAttributes", args.custom_attributes),
        ("InferenceComponentName", args.inference_component),
        ("TargetVariant", args.target_variant),
        ("SessionId", args.session_id),
    ):
        if value is not None:
            params[name] = value
    try:
        client = sagemaker.client(
            region_name=args.region, endpoint_url=args.endpoint_url, profile_name=args.profile
        )
        with client:
            response = client.invoke_endpoint_with_response_stream(**params)
            with response["Body"] as stream:
                out = sys.stdout
                if args.output == "tokens":
                    _print_stream(stream.tokens(), out)
                elif args.output == "lines":
                    _print_stream((line + "\n" for line in stream.lines()), out)
                elif args.output == "raw":
                    for payload in stream.payloads():
                        out.buffer.write(payload)
                        out.buffer.flush()
                else:
                    _print_stream((repr(event) + "\n" for event in stream), out)
    except sagemaker.SageMakerRuntimeError as exc:
        print(f"\nerror: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_stream(pieces: Iterator[str], out: TextIO) -> None:
    last = "\n"
    for piece in pieces:
        out.write(piece)
        out.flush()
        last = piece[-1:] or last
    if last != "\n":
        out.write("\n")


# -- demo -------------------------------------------------------------------------------------------


def add_demo(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="start a local endpoint, stream a generation, then race evstream against boto3",
        description="Starts the local endpoint in another process on a free loopback port, streams a "
        "generation through the evstream client, then streams the same events with evstream and with "
        "boto3 (when installed) and prints events/s and client CPU per event. Exits 0 only if every "
        "stream was complete and identical.",
    )
    parser.add_argument("--events", type=int, default=20_000, help="events per benchmark stream")
    parser.add_argument("--rounds", type=int, default=3, help="streams per client (the best is shown)")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second of the first generation")
    parser.add_argument("--no-boto3", action="store_true", help="skip the boto3 side")
    parser.set_defaults(func=demo)


class _Progress:
    def __init__(self, total: int, out: TextIO) -> None:
        self.total = total
        self.done = 0
        self.out = out
        self.live = out.isatty()
        self.shown = -1

    def advance(self, label: str, amount: int = 1) -> None:
        self.done += amount
        percent = min(100, self.done * 100 // max(1, self.total))
        if self.live and percent != self.shown:
            self.shown = percent
            bar = "#" * (percent // 4) + "." * (25 - percent // 4)
            self.out.write(f"\r  [{bar}] {percent:3d}% {label:<10}")
            self.out.flush()

    def finish(self) -> None:
        if self.live:
            self.out.write("\r" + " " * 60 + "\r")
            self.out.flush()


def _race(
    name: str, stream: Callable[[], Iterator[bytes]], rounds: int, events: int, progress: _Progress
) -> tuple[float, float, bytes]:
    """Best (CPU us per event, events per second) over rounds, and the bytes of the last stream."""
    best_cpu = best_rate = 0.0
    data = b""
    for _ in range(rounds):
        parts = []
        cpu = time.process_time()
        wall = time.perf_counter()
        step = max(1, events // 50)
        for n, part in enumerate(stream(), 1):
            parts.append(part)
            if n % step == 0:
                progress.advance(name, step)
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        progress.advance(name, len(parts) % step)
        data = b"".join(parts)
        if len(parts) != events:
            raise RuntimeError(f"{name}: {len(parts)} events instead of {events}")
        per_event = cpu / events * 1e6
        best_cpu = per_event if not best_cpu else min(best_cpu, per_event)
        best_rate = max(best_rate, events / wall)
    return best_cpu, best_rate, data


def demo(args: argparse.Namespace) -> int:
    from . import IMPLEMENTATION, sagemaker
    from .emulator import Behavior, EmulatorProcess, generate_text

    out = sys.stdout
    keys = {"aws_access_key_id": "AKIDEVSTREAMDEMO", "aws_secret_access_key": "demo-secret"}
    ok = True
    with EmulatorProcess(
        "--access-key", keys["aws_access_key_id"], "--secret-key", keys["aws_secret_access_key"]
    ) as endpoint:
        out.write(f"Local endpoint on {endpoint.url} (another process, SigV4 checked)\n\n")
        client = sagemaker.client(region_name="us-east-1", endpoint_url=endpoint.url, **keys)
        # 1. A generation, printed token by token as it arrives.
        tokens = 48
        request = {
            "inputs": "Tell me about event streams",
            "parameters": {"max_new_tokens": tokens},
            "emulator": {"format": "tgi", "rate": args.rate, "straddle": True},
        }
        out.write("Streaming a generation (TGI format, parts cut across lines and characters):\n\n  ")
        response = client.invoke_endpoint_with_response_stream(
            EndpointName="demo-llm", Body=json.dumps(request), ContentType="application/json"
        )
        text = []
        for token in response["Body"].tokens():
            text.append(token)
            out.write(token.replace("\n", "\n  "))
            out.flush()
        expected = generate_text(Behavior(tokens=tokens))
        complete = "".join(text) == expected
        ok &= complete
        out.write(f"\n\n  {'complete' if complete else 'INCOMPLETE'}: {len(text)} tokens\n\n")

        # 2. The same events through evstream and boto3.
        events = args.events
        body = json.dumps({"emulator": {"format": "raw", "tokens": events, "chunk_events": 1}})
        expected_bytes = generate_text(Behavior(tokens=events)).encode()

        def ours() -> Iterator[bytes]:
            result = client.invoke_endpoint_with_response_stream(EndpointName="demo-bench", Body=body)
            stream: sagemaker.EventStream = result["Body"]
            return stream.payloads()

        racers: list[tuple[str, Callable[[], Iterator[bytes]]]] = [("evstream", ours)]
        if not args.no_boto3:
            try:
                import boto3
            except ImportError:
                out.write("boto3 is not installed: skipping the comparison\n")
            else:
                reference = boto3.client(
                    "sagemaker-runtime", region_name="us-east-1", endpoint_url=endpoint.url, **keys
                )

                def theirs() -> Iterator[bytes]:
                    result = reference.invoke_endpoint_with_response_stream(
                        EndpointName="demo-bench", Body=body
                    )
                    return (event["PayloadPart"]["Bytes"] for event in result["Body"])

                racers.append(("boto3", theirs))
        out.write(f"Streaming {events:,} token events, one per HTTP chunk, {args.rounds} rounds each:\n")
        progress = _Progress(events * args.rounds * len(racers), sys.stderr)
        results = []
        try:
            for name, stream in racers:
                results.append((name, *_race(name, stream, args.rounds, events, progress)))
        finally:
            progress.finish()
        for name, cpu, rate, data in results:
            identical = data == expected_bytes
            ok &= identical
            out.write(
                f"  {name:<9} {rate:>10,.0f} events/s  {cpu:6.2f} us client CPU/event  "
                f"{'complete and identical' if identical else 'MISMATCH'}\n"
            )
        if len(results) == 2:
            out.write(
                f"\n  evstream uses {results[1][1] / results[0][1]:.1f}x less client CPU per event "
                f"than boto3 (codec: {IMPLEMENTATION})\n"
            )
        client.close()
    out.write("\nOK\n" if ok else "\nFAILED: a stream was incomplete or differed\n")
    return 0 if ok else 1


# -- decode and bench (evstream.capture and evstream.bench own their arguments) -------------------------


def add_decode(subparsers: Subparsers) -> None:
    from .capture import add_decode_arguments, run_decode

    parser = subparsers.add_parser("decode", help="decode a capture or raw stream to JSON lines")
    add_decode_arguments(parser)
    parser.set_defaults(func=run_decode)


def add_bench(subparsers: Subparsers) -> None:
    from .bench import add_bench_arguments, run_cli

    parser = subparsers.add_parser("bench", help="benchmark evstream against its peers on this machine")
    add_bench_arguments(parser)
    parser.set_defaults(func=run_cli)


def add_loadtest(subparsers: Subparsers) -> None:
    from .loadtest.cli import add_loadtest_command

    add_loadtest_command(subparsers)


COMMANDS: list[Callable[[Subparsers], None]] = [
    add_demo,
    add_serve,
    add_invoke,
    add_decode,
    add_bench,
    add_loadtest,
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evstream", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for add in COMMANDS:
        add(subparsers)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
