"""The command line as a new user meets it: every mistake is one line on stderr, no traceback, and the
documented exit status (2 usage, 1 runtime, 130 interrupted); invoke --capture then decode round-trips."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import evstream
from evstream import encode
from evstream.emulator import Behavior, generate_records, generate_text

SRC = str(Path(evstream.__file__).resolve().parent.parent)


def child_env(**extra: str) -> dict[str, str]:
    """No AWS credentials, config or instance metadata: each test says what it gives."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EVSTREAM_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        **extra,
    )
    return env


def run(
    *args: str, env: dict[str, str] | None = None, stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evstream", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        env=env or child_env(),
        timeout=120,
    )


def one_line_error(result: subprocess.CompletedProcess[str], status: int, *words: str) -> str:
    assert result.returncode == status, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


class Server:
    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "evstream", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("evstream endpoint listening on http://127.0.0.1:"), line
        self.url = line.rsplit(" ", 1)[-1].strip()
        self.port = self.url.rsplit(":", 1)[-1]

    def stop(self) -> str:
        """SIGTERM (a clean stop, status 0); returns what the server wrote to stderr."""
        self.process.terminate()
        _, err = self.process.communicate(timeout=20)
        assert self.process.returncode == 0, err
        return err


@pytest.fixture()
def server() -> Iterator[Server]:
    endpoint = Server("--format", "openai", "--tokens", "9", "--log")
    try:
        yield endpoint
    finally:
        if endpoint.process.poll() is None:
            endpoint.stop()


def invoke(server: Server, *args: str, body: str = "{}") -> subprocess.CompletedProcess[str]:
    return run("invoke", "cli-endpoint", body, "--endpoint-url", server.url, "--no-sign-request", *args)


# -- help and version ----------------------------------------------------------------------------


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"evstream {evstream.__version__} (codec: ")


@pytest.mark.parametrize("command", ["", "demo", "serve", "invoke", "decode", "bench", "loadtest"])
def test_help_is_plain_text_with_a_description_and_an_example(command: str) -> None:
    result = run(*([command] if command else []), "--help")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for markup in ("``", ":class:", ":func:", ":meth:", ".. "):
        assert markup not in text, (markup, command)
    assert "example" in text.lower(), command
    assert "python -m evstream" in text
    if command in ("", "serve", "invoke", "decode", "demo"):
        assert "exit status" in text
    if command:
        description = text.split("\n\n")[1]
        assert len(description) > 40, description


# -- usage errors: status 2 ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["decode", "--chunk-size", "-3", "x"], ["--chunk-size", "at least 1"]),
        (["serve", "--tokens", "-1"], ["--tokens", "0 or more"]),
        (["serve", "--port", "70000"], ["--port"]),
        (["serve", "--format", "nope"], ["--format"]),
        (["nosuchcommand"], ["invalid choice"]),
        (["invoke"], ["required"]),
        (["invoke", "e", "@missing.json"], ["missing.json"]),
        (["invoke", "e", "{}", "--format", "nope", "--endpoint-url", "http://127.0.0.1:9"], ["nope"]),
        (["invoke", "e", "{}", "--output", "raw", "--format", "tgi"], ["--format"]),
        (["invoke", "e", "{}", "--profile", "nope"], ["nope"]),
        (["invoke", "e", "{}"], ["no AWS region", "--region"]),
        (["invoke", "e", "{}", "--max-attempts", "0"], ["--max-attempts"]),
        (["invoke", "e", "{}", "--event-timeout", "-1"], ["--event-timeout"]),
        (["decode", "/nonexistent/file"], ["/nonexistent/file"]),
        (["decode", "x", "--text", "--tokens"], ["not allowed"]),
    ],
)
def test_usage_errors(args: list[str], words: list[str]) -> None:
    one_line_error(run(*args), 2, *words)


def test_serve_secret_without_key_id_is_a_usage_error(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    one_line_error(run("serve", "--port", "0", "--secret-key-file", str(secret)), 2, "go together")
    one_line_error(
        run("serve", "--port", "0", "--access-key", "AK", "--secret-key-file", "/nope"), 2, "/nope"
    )


# -- runtime errors: status 1 --------------------------------------------------------------------


def test_port_in_use(server: Server) -> None:
    one_line_error(run("serve", "--port", server.port), 1, "cannot listen", server.port)


def test_connection_refused_and_debug_traceback() -> None:
    args = (
        "invoke",
        "e",
        "{}",
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--no-sign-request",
        "--max-attempts",
        "1",
    )
    one_line_error(run(*args), 1, "connect")
    debug = run(*args, env=child_env(EVSTREAM_DEBUG="1"))
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr


def test_no_credentials_names_the_fix(server: Server) -> None:
    result = run("invoke", "e", "{}", "--endpoint-url", server.url)
    one_line_error(result, 1, "no AWS credentials", "--no-sign-request")


@pytest.mark.parametrize("pure_python", ["", "1"], ids=["c", "python"])
def test_decode_a_bad_checksum(tmp_path: Path, pure_python: str) -> None:
    good = encode({":event-type": "PayloadPart", ":message-type": "event"}, b"hello")
    corrupt = bytearray(good * 2)
    corrupt[len(good) + 20] ^= 0xFF  # a payload byte of the second message
    path = tmp_path / "stream.bin"
    path.write_bytes(bytes(corrupt))
    env = child_env(EVSTREAM_NO_EXTENSIONS=pure_python) if pure_python else None
    result = run("decode", str(path), env=env)
    one_line_error(result, 1, "corrupt after message 1", "MessageChecksumMismatch")
    assert json.loads(result.stdout)["payload"] == "hello"  # the message before the bad one


@pytest.mark.parametrize("content", [b"hello, this is a text file\n", b'{"not": "a capture"}\n', b"abc"])
def test_decode_a_file_that_is_not_a_stream(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    one_line_error(run("decode", str(path)), 1, "not an event stream")


def test_decode_a_stream_with_an_error_event(tmp_path: Path) -> None:
    headers = {
        ":exception-type": "ModelStreamError",
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    data = encode({":event-type": "PayloadPart", ":message-type": "event"}, b"Hi") + encode(
        headers, b'{"message": "boom"}'
    )
    path = tmp_path / "stream.bin"
    path.write_bytes(data)
    result = run("decode", str(path), "--text")
    one_line_error(result, 1, "ModelStreamError", "boom")
    assert result.stdout.startswith("Hi")


# -- Ctrl-C: status 130 --------------------------------------------------------------------------


def test_ctrl_c_during_invoke() -> None:
    slow = Server("--format", "tgi", "--tokens", "1000", "--rate", "20")
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "evstream",
                "invoke",
                "e",
                "{}",
                "--endpoint-url",
                slow.url,
                "--no-sign-request",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        assert process.stdout is not None
        process.stdout.read(10)  # streaming has begun
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert process.returncode == 130, err
        assert "Traceback" not in err
        assert err.strip().splitlines() == ["python -m evstream invoke: interrupted"]
    finally:
        slow.stop()


def test_ctrl_c_stops_serve_cleanly() -> None:
    endpoint = Server()
    endpoint.process.send_signal(signal.SIGINT)
    _, err = endpoint.process.communicate(timeout=20)
    assert endpoint.process.returncode == 0
    assert "Traceback" not in err


# -- what works ----------------------------------------------------------------------------------


def test_invoke_tokens_every_format_and_the_serve_log(server: Server) -> None:
    text = generate_text(Behavior(tokens=9))
    for fmt in ("tgi", "lmi", "openai", "llamacpp", "raw", "titan"):
        body = json.dumps({"emulator": {"format": fmt}})
        result = invoke(server, body=body)
        assert result.returncode == 0, result.stderr
        assert result.stdout == (text if text.endswith("\n") else text + "\n")
    for fmt in ("anthropic", "nova", "llama", "cohere", "mistral"):
        body = json.dumps({"emulator": {"format": fmt}})
        result = run(
            "invoke", "model.id", body, "--bedrock", "--endpoint-url", server.url, "--no-sign-request"
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.rstrip("\n") == text.rstrip("\n")
        assert f"[{fmt}: finish reason" in result.stderr
    log = server.stop().splitlines()
    assert len(log) == 11
    assert log[0].split()[1:6] == [
        "POST",
        "/endpoints/cli-endpoint/invocations-response-stream",
        "200",
        "9",
        "events",
    ]
    assert log[-1].split()[1:4] == ["POST", "/model/model.id/invoke-with-response-stream", "200"]
    assert all(line.endswith(" ms") for line in log)


def test_invoke_every_request_parameter(server: Server) -> None:
    result = invoke(
        server,
        "--content-type", "application/json", "--accept", "text/event-stream", "--custom-attributes", "a=1",
        "--target-variant", "v1", "--target-container-hostname", "c1", "--inference-id", "i1",
        "--inference-component", "ic", "--session-id", "s1", "--connect-timeout", "5",
        "--first-byte-timeout", "5", "--event-timeout", "5", "--max-attempts", "2", "--output", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[-1]["choices"][0]["finish_reason"] == "length"
    log = server.stop()
    assert "200 10 events" in log  # nine tokens and [DONE]


def test_invoke_capture_then_decode_round_trips(server: Server, tmp_path: Path) -> None:
    capture = tmp_path / "live.capture"
    body = json.dumps({"emulator": {"format": "lmi", "straddle": True, "tokens": 30}})
    live = invoke(server, "--capture", str(capture), body=body)
    assert live.returncode == 0, live.stderr
    assert live.stdout.rstrip("\n") == generate_text(Behavior(tokens=30)).rstrip("\n")
    tokens = run("decode", str(capture), "--tokens")
    assert tokens.returncode == 0, tokens.stderr
    assert tokens.stdout == live.stdout
    messages = run("decode", str(capture))
    decoded = [json.loads(line) for line in messages.stdout.splitlines()]
    assert all(m["headers"][":event-type"] == "PayloadPart" for m in decoded)
    recorded = [json.loads(line) for line in capture.read_text().splitlines()]
    assert recorded[0]["format"] == "evstream-capture" and len(recorded) == len(decoded) + 1
    raw = run("decode", str(capture), "--text", "--chunk-size", "5")
    assert raw.returncode == 0, raw.stderr
    records = b"".join(generate_records(Behavior(format="lmi", tokens=30))).decode()
    assert raw.stdout == records


def test_invoke_bedrock_capture_round_trips(server: Server, tmp_path: Path) -> None:
    capture = tmp_path / "bedrock.capture"
    body = json.dumps({"emulator": {"format": "anthropic", "tokens": 12}})
    live = run(
        "invoke", "anthropic.claude", body, "--bedrock", "--endpoint-url", server.url, "--no-sign-request",
        "--capture", str(capture),
    )  # fmt: skip
    assert live.returncode == 0, live.stderr
    decoded = run("decode", str(capture), "--tokens")
    assert decoded.stdout == live.stdout == generate_text(Behavior(tokens=12)).rstrip("\n") + "\n"


def test_output_tokens_on_raw_text(server: Server) -> None:
    result = invoke(server, body=json.dumps({"emulator": {"format": "raw"}}))
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip("\n") == generate_text(Behavior(tokens=9)).rstrip("\n")


def test_body_from_stdin(server: Server) -> None:
    result = run(
        "invoke", "e", "@-", "--endpoint-url", server.url, "--no-sign-request",
        stdin=json.dumps({"emulator": {"tokens": 3}}).encode(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip("\n") == generate_text(Behavior(tokens=3)).rstrip("\n")


def test_output_to_a_closed_pipe_is_quiet(server: Server) -> None:
    command = [sys.executable, "-m", "evstream", "invoke", "e", json.dumps({"emulator": {"tokens": 5000}}),
               "--endpoint-url", server.url, "--no-sign-request", "--output", "lines"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(100)
    process.stdout.close()
    started = time.monotonic()
    process.wait(timeout=60)
    assert time.monotonic() - started < 60
    assert b"Traceback" not in process.stderr.read()
    process.stderr.close()


def test_stream_errors_are_one_line_and_captured(server: Server, tmp_path: Path) -> None:
    capture = tmp_path / "broken.capture"
    body = json.dumps({"emulator": {"fault": "model-stream-error", "after": 2, "error_code": "StreamBroken"}})
    result = invoke(server, "--capture", str(capture), "--max-attempts", "1", body=body)
    one_line_error(result, 1, "ModelStreamError")
    replay = run("decode", str(capture), "--text")
    one_line_error(replay, 1, "ModelStreamError")
    assert len(replay.stdout) > 0  # the two parts before the error


def test_in_band_model_error_is_one_line(tmp_path: Path) -> None:
    records = [
        b'data:{"token": {"id": 1, "text": "Hi", "special": false}}\n\n',
        b'data:{"error": "Request failed during generation: CUDA out of memory", "error_type": "generation"}\n\n',
    ]
    frames = b"".join(encode({":event-type": "PayloadPart", ":message-type": "event"}, r) for r in records)
    path = tmp_path / "tgi.bin"
    path.write_bytes(frames)
    result = run("decode", str(path), "--tokens")
    one_line_error(result, 1, "the model reported an error in the stream", "CUDA out of memory")
    assert result.stdout == "Hi\n"
