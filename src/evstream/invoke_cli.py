"""``python -m evstream invoke``: one streaming call with the evstream client, its output printed as it
arrives, optionally recorded as a capture (the arguments are declared in ``__main__``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from .cli import EXIT_OK, UsageError, one_line, os_error, write_text

__all__ = ["REQUEST_PARAMETERS", "run_invoke"]

# (option, boto3 parameter, help) of InvokeEndpointWithResponseStream, beside EndpointName and Body.
REQUEST_PARAMETERS = (
    ("--content-type", "ContentType", "MIME type of the body (default application/json)"),
    ("--accept", "Accept", "MIME type wanted in the answer"),
    ("--custom-attributes", "CustomAttributes", "passed to the container as is"),
    ("--target-variant", "TargetVariant", "production variant to invoke"),
    ("--target-container-hostname", "TargetContainerHostname", "container of a multi-container endpoint"),
    ("--inference-id", "InferenceId", "identifier recorded with the invocation"),
    ("--inference-component", "InferenceComponentName", "inference component to invoke"),
    ("--session-id", "SessionId", "stateful session to use"),
)


def _read_body(argument: str) -> bytes:
    if not argument.startswith("@"):
        return argument.encode()
    path = argument[1:]
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise UsageError(f"cannot read the request body from {path}: {os_error(exc)}") from None


def _client(args: argparse.Namespace) -> Any:
    from . import sagemaker

    kwargs: dict[str, Any] = {"region_name": args.region, "endpoint_url": args.endpoint_url}
    if args.region is None and args.endpoint_url and not _region_configured(args.profile):
        kwargs["region_name"] = "us-east-1"  # any region signs for a local endpoint
    if args.profile:
        kwargs["profile_name"] = args.profile
    if args.no_sign_request:
        kwargs["sign"] = False
    for name in ("connect_timeout", "first_byte_timeout", "event_timeout", "max_attempts"):
        if getattr(args, name) is not None:
            kwargs[name] = getattr(args, name)
    make = sagemaker.bedrock_client if args.bedrock else sagemaker.client
    try:
        return make(**kwargs)
    except Exception as exc:
        name = type(exc).__name__
        if name == "NoRegionError":
            hint = "give --region, set AWS_REGION, or use a profile with one"
            raise UsageError(f"no AWS region: {hint}") from None
        if name in ("ProfileNotFound", "InvalidRegionError", "ValueError", "InvalidConfigError"):
            raise UsageError(one_line(exc)) from None
        raise


def _region_configured(profile: str | None) -> bool:
    if os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"):
        return True
    try:
        import botocore.session

        return botocore.session.Session(profile=profile).get_config_variable("region") is not None
    except Exception:
        return False  # an unknown profile: the client reports it


def run_invoke(args: argparse.Namespace) -> int:
    body = _read_body(args.body)
    if args.format is not None and args.output not in ("tokens", "json"):
        raise UsageError("--format applies to --output tokens and --output json")
    if args.format is not None:
        from .formats import resolve_format

        try:
            resolve_format(args.format)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.bedrock:
        params: dict[str, Any] = {"modelId": args.endpoint_name, "body": body}
        for option, name, _ in REQUEST_PARAMETERS:
            value = getattr(args, option[2:].replace("-", "_"))
            if value is not None:
                if name not in ("ContentType", "Accept"):
                    raise UsageError(f"{option} is a SageMaker parameter; Bedrock takes none")
                params[name[0].lower() + name[1:]] = value
    else:
        params = {"EndpointName": args.endpoint_name, "Body": body, "ContentType": "application/json"}
        for option, name, _ in REQUEST_PARAMETERS:
            value = getattr(args, option[2:].replace("-", "_"))
            if value is not None:
                params[name] = value
    with _client(args) as client:
        if args.bedrock:
            stream = client.invoke_model_with_response_stream(**params)["body"]
        else:
            stream = client.invoke_endpoint_with_response_stream(**params)["Body"]
        with stream:
            _print_output(stream, args, sys.stdout)
    return EXIT_OK


def _print_output(stream: Any, args: argparse.Namespace, out: TextIO) -> None:
    from . import lines

    capture = None
    payloads: Iterable[bytes] = stream.payloads()
    if args.capture:
        if args.output == "events":
            raise UsageError("--capture goes with --output tokens, raw, lines or json")
        from .capture import CaptureWriter

        try:
            capture = CaptureWriter(args.capture, source=f"python -m evstream invoke {args.endpoint_name}")
        except OSError as exc:
            raise UsageError(f"cannot write the capture {args.capture}: {os_error(exc)}") from None
        payloads = _recorded(stream, capture, bedrock=args.bedrock)
    try:
        if args.output == "events":
            write_text((repr(event) + "\n" for event in stream), out)
        elif args.output == "raw":
            for payload in payloads:
                out.buffer.write(payload)
                out.buffer.flush()
        elif args.output == "lines":
            write_text((line + "\n" for line in lines.iter_lines(payloads)), out)
        elif args.output == "json":
            records = lines.iter_json(payloads, format=args.format)
            write_text((json.dumps(r, ensure_ascii=False) + "\n" for r in records), out)
        else:
            tokens = lines.iter_tokens(payloads, format=args.format)
            write_text(tokens, out)
            if tokens.finish_reason is not None or tokens.usage is not None:
                usage = tokens.usage
                counts = f", {usage.input_tokens} tokens in, {usage.output_tokens} out" if usage else ""
                print(f"[{tokens.format}: finish reason {tokens.finish_reason}{counts}]", file=sys.stderr)
    finally:
        if capture is not None:
            capture.close()


def _recorded(stream: Any, capture: Any, *, bedrock: bool) -> Iterator[bytes]:
    """The payloads of ``stream``'s events, each recorded as the event-stream frame that carries it (the
    service's headers, re-encoded), with its arrival time; an error the stream raises is recorded as
    the exception frame the service sends."""
    from .emulator.events import bedrock_chunk, exception_frame, payload_part

    frame = bedrock_chunk if bedrock else payload_part
    outer, inner = ("chunk", "bytes") if bedrock else ("PayloadPart", "Bytes")
    try:
        for event in stream:
            data = event.get(outer, {}).get(inner)
            if data is None:
                continue
            capture.write(frame(data))
            capture.flush()
            yield data
    except Exception as exc:
        error = getattr(exc, "response", None)
        if isinstance(error, dict) and isinstance(error.get("Error"), dict):
            code = str(error["Error"].get("Code") or type(exc).__name__)
            capture.write(exception_frame(code, {"message": str(error["Error"].get("Message", exc))}))
            capture.flush()
        raise
