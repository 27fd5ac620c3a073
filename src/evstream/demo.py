"""``python -m evstream demo``: a local endpoint, a generation streamed token by token, then the client
CPU per event of boto3, boto3 with evstream's botocore drop-in, and evstream's client.

The three rows consume the same thing: boto3's event dicts (``{"PayloadPart": {"Bytes": ...}}``) from
``response["Body"]``, over the same endpoint, measured by the one end-to-end harness
(:mod:`evstream.bench.e2e`) that ``bench`` and ``benchmarks/`` use.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from .bench.e2e import Clients, LocalEndpoint, PeerUnavailable, Workload, measure_cpu
from .bench.progress import Progress
from .emulator.workloads import FINISH_REASONS, Behavior, generate_text

__all__ = ["ROWS", "add_demo_arguments", "run_demo"]

# (harness peer, what the row is) in the order printed.
ROWS = (
    ("boto3", "boto3"),
    ("boto3 + evstream drop-in", "boto3 + evstream.botocore.install()"),
    ("evstream client", "evstream.sagemaker.client"),
)
GENERATION_TOKENS = 48
BEDROCK_MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    from .cli import non_negative_float, positive_int

    parser.add_argument("--events", type=positive_int, default=20_000, help="events per measured stream")
    parser.add_argument("--rounds", type=positive_int, default=3, help="streams per row (the best is shown)")
    parser.add_argument(
        "--rate",
        type=non_negative_float,
        default=50.0,
        help="tokens per second of the first generation (0: as fast as possible)",
    )
    parser.add_argument("--no-boto3", action="store_true", help="measure evstream only")


def _generation(endpoint: LocalEndpoint, rate: float, out: TextIO) -> bool:
    """Stream a TGI generation token by token, then a Bedrock Claude one; True if both were whole."""
    from . import sagemaker

    request = {
        "inputs": "Tell me about event streams",
        "parameters": {"max_new_tokens": GENERATION_TOKENS},
        "emulator": {"format": "tgi", "rate": rate, "straddle": True},
    }
    out.write("Streaming a generation (TGI format, parts cut across lines and characters):\n\n  ")
    expected = generate_text(Behavior(tokens=GENERATION_TOKENS))
    with sagemaker.client(**endpoint.client_kwargs) as client:
        response = client.invoke_endpoint_with_response_stream(
            EndpointName="demo-llm", Body=json.dumps(request), ContentType="application/json"
        )
        tokens = response["Body"].tokens()
        pieces = []
        for piece in tokens:
            pieces.append(piece)
            out.write(piece.replace("\n", "\n  "))
            out.flush()
    complete = "".join(pieces) == expected
    out.write(
        f"\n\n  {'complete' if complete else 'INCOMPLETE'}: {len(pieces)} tokens, "
        f"format {tokens.format}, finish reason {tokens.finish_reason}, usage {_usage(tokens.usage)}\n\n"
    )
    body = {"emulator": {"format": "anthropic", "tokens": GENERATION_TOKENS}}
    with sagemaker.bedrock_client(**endpoint.client_kwargs) as bedrock:
        response = bedrock.invoke_model_with_response_stream(modelId=BEDROCK_MODEL, body=json.dumps(body))
        tokens = response["body"].tokens()
        text = "".join(tokens)
    whole = text == expected and tokens.finish_reason == FINISH_REASONS["anthropic"]
    out.write(
        f"The same through Bedrock (InvokeModelWithResponseStream, Anthropic Claude messages, one JSON\n"
        f"object per chunk): {'complete' if whole else 'INCOMPLETE'}, {len(text)} characters, "
        f"format {tokens.format}, finish reason {tokens.finish_reason}, usage {_usage(tokens.usage)}\n\n"
    )
    return complete and whole


def _bidirectional(rate: float, out: TextIO) -> bool:
    """Both ways at once over HTTP/2 (InvokeEndpointWithBidirectionalStream): a thread sends a
    conversation word by word while the model's replies stream back; True if every reply was whole."""
    import tempfile
    import threading
    import time

    from .emulator.http2 import Http2EndpointThread, tls_context
    from .sagemaker import http2_client

    turns = ["Hello there", "How do event streams work", "And both ways over HTTP/2", "Thanks"]
    keys = {
        "region_name": "us-west-2",
        "aws_access_key_id": "AKIDDEMO",
        "aws_secret_access_key": "demo-secret",
    }
    pause = 1 / rate if rate else 0.0
    lock = threading.Lock()

    def say(line: str) -> None:
        with lock:
            out.write(f"  {time.perf_counter() - start:6.3f} s  {line}\n")
            out.flush()

    out.write(
        "Both ways at once (SageMaker InvokeEndpointWithBidirectionalStream over HTTP/2 with TLS, every\n"
        "event signed and verified): a thread sends words (-> ) while the replies stream back (<- ):\n\n"
    )
    with tempfile.TemporaryDirectory() as directory:
        context, ca_file = tls_context(directory)
        credentials = {keys["aws_access_key_id"]: keys["aws_secret_access_key"]}
        with Http2EndpointThread(ssl=context, credentials=credentials, region="us-west-2") as server:
            runtime = http2_client(endpoint_url=server.url, verify=ca_file, **keys)
            # The model answers each turn in 4 parts, one every 1.5 words' time: its answer to one turn is
            # still streaming while the next turn is being sent.
            query = f"mode=conversation&parts=4&delay={1.5 * pause:.3f}"
            start = time.perf_counter()
            with runtime.invoke_endpoint_with_bidirectional_stream(
                EndpointName="demo-chat", ModelQueryString=query
            ) as stream:

                def send() -> None:
                    for turn in turns:
                        words = turn.split(" ")
                        for index, word in enumerate(words):
                            last = index == len(words) - 1
                            text = word if last else word + " "
                            stream.send(text, completion_state="COMPLETE" if last else "PARTIAL")
                            say(f"->  {text!r}{'  (turn complete)' if last else ''}")
                            time.sleep(pause)
                    stream.close_input()

                sender = threading.Thread(target=send)
                sender.start()
                replies, reply = [], b""
                for event in stream:
                    part = event["PayloadPart"]
                    reply += part["Bytes"]
                    say(f"<-  {part['Bytes'].decode()!r}  ({part['CompletionState']})")
                    if part["CompletionState"] == "COMPLETE":
                        replies.append(reply)
                        reply = b""
                sender.join()
            runtime.close()
            record = server.endpoint.exchanges[-1]
    expected = [b"turn %d: %s" % (i + 1, turn.encode()) for i, turn in enumerate(turns)]
    whole = replies == expected and record.signed_end and not record.error
    words = sum(len(turn.split(" ")) for turn in turns)
    out.write(
        f"\n  {'complete' if whole else 'INCOMPLETE'}: {len(replies)} replies to {len(turns)} turns; "
        f"the endpoint verified {record.events_in} of {words} event signatures and the signed end of "
        "the input\n\n"
    )
    return whole and record.events_in == words


def _round_ticks(progress: Progress, label: str, rounds: int) -> Callable[[int], None]:
    tick = progress.step(label)
    return lambda done: tick(done / rounds)


def _usage(usage: Any) -> str:
    if usage is None:
        return "not reported"
    counts = ((usage.input_tokens, "in"), (usage.output_tokens, "out"))
    return " / ".join(f"{n} {what}" for n, what in counts if n is not None) or "not reported"


def run_demo(args: argparse.Namespace) -> int:
    from . import IMPLEMENTATION

    out = sys.stdout
    ok = True
    with LocalEndpoint() as endpoint:
        out.write(f"Local endpoint on {endpoint.url} (another process; SigV4 signatures checked)\n\n")
        ok &= _generation(endpoint, args.rate, out)
        ok &= _bidirectional(args.rate, out)

        workload = Workload(events=args.events)
        rows = [row for row in ROWS if not args.no_boto3 or row[0] == "evstream client"]
        out.write(
            f"Client CPU per event: {args.events:,} token events sent back to back (one event per HTTP\n"
            f"chunk, as fast as the loopback endpoint sends them), read as boto3's event dicts by each\n"
            f"client; best of {args.rounds} rounds. The figure is this process's CPU time\n"
            f"(time.process_time) divided by the events: the client's own cost, without the endpoint's.\n"
            f"At real token rates (events 10-100 ms apart) every event also costs a wake-up, and the\n"
            f"ratios shrink: `python -m evstream bench` measures both regimes.\n\n"
        )
        progress = Progress(len(rows))
        results = []
        with Clients(endpoint) as clients:
            try:
                for peer, label in rows:
                    try:
                        run = clients.runner(peer, workload)
                    except PeerUnavailable as exc:
                        out.write(f"  {label}: skipped ({exc})\n")
                        continue
                    result = measure_cpu(
                        run, args.events, args.rounds, _round_ticks(progress, label, args.rounds)
                    )
                    progress.finish_step()
                    results.append((peer, label, result))
            finally:
                progress.close()
        expected = workload.expected()
        width = max(len(label) for _, label, _ in results) if results else 0
        for _, label, result in results:
            identical = result.data == expected
            ok &= identical
            out.write(
                f"  {label:<{width}}  {result.cpu_per_event * 1e6:7.2f} us CPU/event  "
                f"{result.events_per_s:>10,.0f} events/s  {'complete' if identical else 'MISMATCH'}\n"
            )
        cpu = {peer: result.cpu_per_event for peer, _, result in results}
        if "boto3" in cpu and "evstream client" in cpu and cpu["evstream client"] > 0:
            ratio = cpu["boto3"] / cpu["evstream client"]
            out.write(f"\n  evstream's client uses {ratio:.1f}x less CPU per event than boto3")
            if "boto3 + evstream drop-in" in cpu:
                out.write(
                    f", boto3 with the drop-in {cpu['boto3'] / cpu['boto3 + evstream drop-in']:.1f}x less"
                )
            out.write(f" (codec: {IMPLEMENTATION})\n")
    out.write("\nOK\n" if ok else "\nFAILED: a stream was incomplete or differed\n")
    return 0 if ok else 1
