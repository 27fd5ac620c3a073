"""python -m evstream: the command line (demo, serve, invoke, decode, bench, loadtest).

Each subcommand is an ``add_<name>(subparsers)`` function that registers its arguments, description and
example, and sets ``func``. Errors: every mistake is one line on stderr and an exit status (see
``EXIT_STATUSES``); ``EVSTREAM_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, TextIO

from .cli import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_RUNTIME,
    EXIT_STATUSES,
    EXIT_USAGE,
    ArgumentParser,
    CommandError,
    UsageError,
    command_help,
    non_negative_float,
    non_negative_int,
    one_line,
    os_error,
    port_number,
    positive_float,
    positive_int,
)

__all__ = ["COMMANDS", "main"]

Subparsers = Any  # argparse._SubParsersAction is private

# -- serve ------------------------------------------------------------------------------------------


def add_serve(subparsers: Subparsers) -> None:
    from .emulator import FAULTS, FORMATS
    from .emulator.latency import add_latency_arguments
    from .emulator.loops import LOOPS
    from .emulator.sigv4 import ACCESS_KEY_ENV, SECRET_KEY_ENV

    parser = subparsers.add_parser(
        "serve",
        help="run the local SageMaker- and Bedrock-compatible streaming endpoint",
        **command_help(
            "A local endpoint for SageMaker InvokeEndpointWithResponseStream and Bedrock\n"
            "InvokeModelWithResponseStream: boto3 and evstream work against it with endpoint_url.\n"
            "It streams a generation in the container format or Bedrock model family of --format.\n"
            "A JSON request body can override the defaults per request, e.g.\n"
            '  {"inputs": "...", "emulator": {"tokens": 100, "format": "anthropic"}}.\n'
            "With keys it checks SigV4 signatures: the access key id from --access-key or\n"
            f"{ACCESS_KEY_ENV}, the secret from --secret-key-file or {SECRET_KEY_ENV}\n"
            "(never on the command line, where other users of the machine can read it).",
            [
                "python -m evstream serve --port 8080 --format openai --log",
                "python -m evstream serve --port 0 --format anthropic --tokens 200 --rate 40",
            ],
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--port", type=port_number, default=8080, help="port (0 picks a free one; default 8080)"
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="tgi", help="container format or Bedrock family (default tgi)"
    )
    parser.add_argument("--tokens", type=non_negative_int, default=64, help="tokens per generation")
    parser.add_argument(
        "--rate", type=non_negative_float, default=0.0, help="tokens per second (0: as fast as possible)"
    )
    add_latency_arguments(parser)
    parser.add_argument(
        "--chunk-events", type=positive_int, default=1, help="event-stream frames per HTTP chunk"
    )
    parser.add_argument("--straddle", action="store_true", help="cut parts across lines and UTF-8 characters")
    parser.add_argument("--fault", choices=FAULTS, default="", help="inject this error in every response")
    parser.add_argument(
        "--after", type=non_negative_int, default=0, help="events sent before an in-stream fault"
    )
    parser.add_argument(
        "--access-key", help=f"check SigV4 signatures made with this key id ({ACCESS_KEY_ENV})"
    )
    parser.add_argument(
        "--secret-key-file", help=f"file whose first line is the secret key ({SECRET_KEY_ENV})"
    )
    parser.add_argument("--upstream", help="proxy mode: URL of a model container (POST /invocations)")
    add_http2_arguments(parser)
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default="auto",
        help="event loop: auto (uvloop when installed, else asyncio's), uvloop, or asyncio",
    )
    parser.add_argument(
        "--log",
        action="store_true",
        help="one line per request on stderr: method, path, status, events, time",
    )
    parser.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    from .emulator import Behavior, Emulator
    from .emulator.loops import resolve_loop
    from .emulator.loops import run as run_loop
    from .emulator.process import ENDPOINT_LINE
    from .emulator.sigv4 import load_credentials

    try:
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
        credentials = load_credentials(args.access_key, args.secret_key_file)
        resolve_loop(args.loop)
    except OSError as exc:
        raise UsageError(f"cannot read the secret key file {args.secret_key_file}: {os_error(exc)}") from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    emulator = Emulator(
        args.host,
        args.port,
        behavior=behavior,
        credentials=credentials,
        upstream=args.upstream,
        on_request=_request_logger(sys.stderr) if args.log else None,
    )

    async def run() -> None:
        try:
            await emulator.start()
        except OSError as exc:
            raise CommandError(f"cannot listen on {args.host}:{args.port}: {os_error(exc)}") from None
        print(f"{ENDPOINT_LINE}{emulator.url}", flush=True)
        http2 = await start_http2(args, credentials, stack, behavior)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # Windows has no signal handlers in asyncio: Ctrl-C raises KeyboardInterrupt there.
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            for listener in http2:
                await listener.close()
            await emulator.close()

    with contextlib.suppress(KeyboardInterrupt), contextlib.ExitStack() as stack:
        run_loop(run(), args.loop)
    return EXIT_OK


def add_http2_arguments(parser: argparse.ArgumentParser) -> None:
    from .emulator.http2 import BIDI_FAULTS, MODES

    parser.add_argument(
        "--http2-port",
        type=port_number,
        help="also serve bidirectional streaming (SageMaker InvokeEndpointWithBidirectionalStream, Bedrock "
        "InvokeModelWithBidirectionalStream) over HTTP/2 with TLS on this port; prints the CA file to trust",
    )
    parser.add_argument(
        "--http2-cleartext-port",
        type=port_number,
        help="the same over cleartext HTTP/2 (h2c, prior knowledge)",
    )
    parser.add_argument(
        "--http2-mode",
        choices=MODES,
        default="echo",
        help="echo each input part, take conversation turns, or answer each turn with a generation (as a "
        'response stream; the "emulator" object of its body applies); answers follow --ttft/--itl/--rate',
    )
    parser.add_argument(
        "--http2-fault", choices=BIDI_FAULTS, default="", help="inject this error in every HTTP/2 stream"
    )


async def start_http2(
    args: argparse.Namespace, credentials: Any, stack: contextlib.ExitStack, behavior: Any
) -> list[Any]:
    """The HTTP/2 listeners asked for (answers paced by ``behavior``'s latency profile); each prints its
    URL, the TLS one its CA file too."""
    if args.http2_port is None and args.http2_cleartext_port is None:
        return []
    import tempfile

    from .emulator.http2 import Bidi, start_listeners
    from .emulator.process import CA_LINE, HTTP2_LINE

    directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="evstream-http2-"))
    try:
        listeners, ca_file = await start_listeners(
            args.host,
            tls_port=args.http2_port,
            cleartext_port=args.http2_cleartext_port,
            directory=directory,
            bidi=Bidi(mode=args.http2_mode, fault=args.http2_fault, after=args.after),
            behavior=behavior,
            credentials=credentials,
        )
    except ImportError as exc:
        raise CommandError(f"HTTP/2 needs evstream[http2] (h2, trustme): {exc}") from None
    except OSError as exc:
        raise CommandError(f"cannot listen for HTTP/2 on {args.host}: {os_error(exc)}") from None
    for listener in listeners:
        print(f"{HTTP2_LINE}{listener.url}", flush=True)
    if ca_file is not None:
        print(f"{CA_LINE}{ca_file}", flush=True)
    return listeners


def _request_logger(out: TextIO) -> Callable[[Any, int, float], None]:
    def log(request: Any, status: int, seconds: float) -> None:
        stamp = time.strftime("%H:%M:%S")
        out.write(
            f"{stamp} {request.method} {request.path} {status} "
            f"{request.events} events {seconds * 1000:.1f} ms\n"
        )
        out.flush()

    return log


# -- invoke -----------------------------------------------------------------------------------------


def add_invoke(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "invoke",
        help="stream from a SageMaker endpoint (or a Bedrock model) with the evstream client",
        **command_help(
            "Call InvokeEndpointWithResponseStream (with --bedrock, InvokeModelWithResponseStream on the\n"
            "model id) and print the output as it arrives. Credentials, region and endpoint are found as\n"
            "boto3 finds them; --no-sign-request sends unsigned requests (the local endpoint without keys).\n"
            "--output tokens prints the generated text of any container format or Bedrock family,\n"
            "detected from the stream (--format names it); an error the model reports inside the stream\n"
            "ends the command with status 1.",
            [
                'python -m evstream invoke my-endpoint \'{"inputs": "Hi"}\' --output tokens',
                "python -m evstream invoke demo @request.json --endpoint-url http://127.0.0.1:8080 "
                "--no-sign-request --capture out.capture",
            ],
        ),
    )
    parser.add_argument("endpoint_name", help="endpoint name (with --bedrock: the model id)")
    parser.add_argument("body", help="request body, or @FILE to read it from a file (@- for stdin)")
    parser.add_argument("--bedrock", action="store_true", help="invoke a Bedrock model instead")
    parser.add_argument("--endpoint-url", help="e.g. http://127.0.0.1:8080 for python -m evstream serve")
    parser.add_argument(
        "--region", help="AWS region (default: as boto3 finds it; us-east-1 with --endpoint-url)"
    )
    parser.add_argument("--profile", help="a profile of the AWS config files")
    parser.add_argument("--no-sign-request", action="store_true", help="do not sign (no credentials needed)")
    from .invoke_cli import REQUEST_PARAMETERS

    for option, _, text in REQUEST_PARAMETERS:
        parser.add_argument(option, metavar="VALUE", help=text)
    parser.add_argument(
        "--connect-timeout", type=positive_float, metavar="SECONDS", help="seconds to connect"
    )
    parser.add_argument(
        "--first-byte-timeout",
        type=positive_float,
        metavar="SECONDS",
        help="seconds to the answer and first event",
    )
    parser.add_argument(
        "--event-timeout", type=positive_float, metavar="SECONDS", help="seconds allowed between two events"
    )
    parser.add_argument(
        "--max-attempts", type=positive_int, metavar="N", help="attempts in all, retries included"
    )
    parser.add_argument(
        "--output",
        choices=("tokens", "raw", "lines", "events", "json"),
        default="tokens",
        help="tokens: generated text; raw: payload bytes; lines; json: one record per line; "
        "events: boto3's event dicts (default tokens)",
    )
    parser.add_argument("--format", help="stream format for --output tokens/json (default: detected)")
    parser.add_argument(
        "--capture", metavar="FILE", help="also record the stream's bytes to FILE (see decode)"
    )
    parser.set_defaults(func=invoke)


def invoke(args: argparse.Namespace) -> int:
    from .invoke_cli import run_invoke

    return run_invoke(args)


# -- demo, decode, bench, loadtest (their modules own their arguments) ------------------------------------


def add_demo(subparsers: Subparsers) -> None:
    from .demo import add_demo_arguments, run_demo

    parser = subparsers.add_parser(
        "demo",
        help="start a local endpoint, stream a generation, then compare client CPU per event",
        **command_help(
            "Starts the local endpoint in another process, streams a generation token by token with\n"
            "evstream (a SageMaker TGI container, then Bedrock Claude), then measures the client CPU per\n"
            "event of boto3, boto3 with evstream's drop-in, and evstream's client reading the same events.\n"
            "Exits 0 only if every stream was complete and identical.",
            ["python -m evstream demo", "python -m evstream demo --events 5000 --rounds 1"],
        ),
    )
    add_demo_arguments(parser)
    parser.set_defaults(func=run_demo)


def add_decode(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "decode",
        help="decode a capture or a raw event-stream file",
        **command_help(
            "Reads a capture (recorded by invoke --capture or bench --capture) or a raw event-stream file\n"
            "and prints its messages as JSON lines (headers, payload); with --text or --tokens, the text\n"
            "the payloads carry, or the generated text of the model stream they hold. A corrupt stream\n"
            "prints the messages before the bad frame, then the error, and exits 1.",
            [
                "python -m evstream decode out.capture",
                "python -m evstream decode out.capture --tokens",
                "python -m evstream decode stream.bin --chunk-size 7",
            ],
        ),
    )
    parser.add_argument("file", help="a capture (JSON lines) or a raw event stream; - for stdin")
    parser.add_argument(
        "--chunk-size", type=positive_int, metavar="N", help="feed the decoder N bytes at a time"
    )
    view = parser.add_mutually_exclusive_group()
    view.add_argument("--text", action="store_true", help="print the payloads as text")
    view.add_argument("--tokens", action="store_true", help="print the generated text (format detected)")
    parser.add_argument("--format", help="stream format for --tokens (default: detected)")
    parser.add_argument("-o", "--output", default="-", help="where to write (default stdout)")
    parser.set_defaults(func=decode)


def decode(args: argparse.Namespace) -> int:
    from .decode_cli import run_decode

    return run_decode(args)


def add_bench(subparsers: Subparsers) -> None:
    from .bench import add_bench_arguments, run_cli

    parser = subparsers.add_parser(
        "bench",
        help="benchmark evstream against its peers on this machine",
        **command_help(
            "Measures evstream's codec, CRC and clients against boto3/botocore, aiobotocore and the\n"
            "floors of this machine, in one run, and prints the ratios (see the README's Performance).",
            ["python -m evstream bench", "python -m evstream bench --quick"],
        ),
    )
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


def build_parser() -> ArgumentParser:
    from . import CRC32_BACKEND, IMPLEMENTATION, __version__

    parser = ArgumentParser(
        prog="python -m evstream",
        description="evstream: a fast AWS event stream codec and SageMaker/Bedrock streaming client.\n"
        "Commands: demo, serve (a local endpoint), invoke, decode, bench, loadtest.",
        epilog="example:\n  python -m evstream demo\n  python -m evstream COMMAND --help\n\n" + EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"evstream {__version__} (codec: {IMPLEMENTATION}, crc32: {CRC32_BACKEND}, "
        f"Python {sys.version.split()[0]})",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for add in COMMANDS:
        add(subparsers)
    return parser


def _describe(exc: BaseException) -> str:
    """The one line a failure is reported with."""
    from . import lines

    if isinstance(exc, lines.InBandError):
        return f"the model reported an error in the stream: {one_line(exc)}"
    name = type(exc).__name__
    if name == "NoCredentialsError":
        return "no AWS credentials found (for a local endpoint without keys, add --no-sign-request)"
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{name}: {exc.strerror}{where}"
    return f"{name}: {one_line(exc)}"


def _debug() -> bool:
    return os.environ.get("EVSTREAM_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def main(argv: list[str] | None = None) -> int:
    prog = "python -m evstream"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        prog = f"{prog} {args.command}"
        status: int = args.func(args)
        return status
    except KeyboardInterrupt:
        if _debug():
            traceback.print_exc()
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout went away (| head): nothing more to say; keep the exit quiet.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_RUNTIME
    except UsageError as exc:
        if _debug():
            traceback.print_exc()
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        if _debug():
            traceback.print_exc()
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_RUNTIME
    except Exception as exc:
        if _debug():
            traceback.print_exc()
        print(f"{prog}: error: {_describe(exc)}", file=sys.stderr)
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
