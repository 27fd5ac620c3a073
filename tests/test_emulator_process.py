"""Running the endpoint: the start-up lines of ``serve`` (read in one place), and the event loop it and
the load test run on (one choice, resolved in one place)."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import urllib.request

import pytest
from emulator_support import ENDPOINT_LOOPS

from evstream.__main__ import main
from evstream.emulator import EmulatorProcess
from evstream.emulator.loops import new_event_loop, resolve_loop, run
from evstream.emulator.process import read_listening

SERVE_LINES = (
    "evstream endpoint listening on http://127.0.0.1:5001\n"
    "evstream HTTP/2 endpoint listening on https://127.0.0.1:5002\n"
    "evstream HTTP/2 endpoint listening on http://127.0.0.1:5003\n"
    "evstream HTTP/2 CA certificate: /tmp/a dir/evstream-http2-ca.pem\n"
    "evstream endpoint listening on http://127.0.0.1:9\n"
)


def test_the_start_up_lines_say_where_each_listener_is() -> None:
    lines = io.StringIO(SERVE_LINES)
    found = read_listening(lines, http2=True, cleartext=True)
    assert (found.url, found.http2_url, found.http2_cleartext_url, found.ca_file) == (
        "http://127.0.0.1:5001",
        "https://127.0.0.1:5002",
        "http://127.0.0.1:5003",
        "/tmp/a dir/evstream-http2-ca.pem",  # a path with a space survives
    )
    assert lines.readline().endswith(":9\n")  # exactly the start-up lines were read
    assert read_listening(io.StringIO(SERVE_LINES)).http2_url == ""


@pytest.mark.parametrize(
    ("text", "http2", "message"),
    [
        ("", False, "did not start: ''"),  # the process ended
        ("Traceback (most recent call last):\n", False, "did not start: 'Traceback"),
        (SERVE_LINES.replace("CA certificate", "CA file"), True, "did not print its ca_file"),
        ("evstream endpoint listening on http://h:1\nerror: no h2\n", True, "did not start: 'error: no h2"),
        ("evstream endpoint listening on http://h:1\n" * 3, True, "did not print its http2_url, ca_file"),
    ],
)
def test_start_up_lines_that_are_not_a_started_endpoint(text: str, http2: bool, message: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        read_listening(io.StringIO(text), http2=http2)


def test_a_child_endpoint_reads_its_http2_lines_too() -> None:
    pytest.importorskip("h2")
    pytest.importorskip("trustme")
    with EmulatorProcess("--http2-port", "0", "--http2-cleartext-port", "0") as endpoint:
        found = endpoint.listening
        assert endpoint.url == found.url and found.url.startswith("http://127.0.0.1:")
        assert found.http2_url.startswith("https://127.0.0.1:")
        assert found.http2_cleartext_url.startswith("http://127.0.0.1:")
        assert os.path.isfile(found.ca_file)
        with urllib.request.urlopen(endpoint.url + "/ping", timeout=5) as answer:
            assert answer.status == 200


# -- the event loop -----------------------------------------------------------------------------------


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_without_uvloop_auto_is_asyncio_and_uvloop_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    assert resolve_loop("auto") == resolve_loop("asyncio") == "asyncio"
    assert run(loop_module(), "auto") == "asyncio"
    with pytest.raises(ValueError, match=r"^the uvloop event loop is not installed \(pip install uvloop\)$"):
        resolve_loop("uvloop")
    with pytest.raises(ValueError, match="not installed"):
        run(loop_module(), "uvloop")  # and no "never awaited" warning: the coroutine was closed
    with pytest.raises(ValueError, match="must be one of auto, uvloop, asyncio"):
        resolve_loop("trio")


def test_with_uvloop_auto_runs_it() -> None:
    pytest.importorskip("uvloop")
    assert resolve_loop("auto") == resolve_loop("uvloop") == "uvloop"
    assert run(loop_module(), "auto") == run(loop_module(), "uvloop") == "uvloop"
    assert run(loop_module(), "asyncio") == "asyncio"
    loop = new_event_loop("auto")
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


def test_loadtest_reports_the_loop_it_runs_and_refuses_one_it_cannot(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert main(["loadtest", "--local", "--loop", "uvloop", "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: the uvloop event loop is not installed (pip install uvloop)\n"
    assert "Load test" not in captured.out  # refused before the endpoint started


def test_serve_refuses_a_loop_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert main(["serve", "--port", "0", "--loop", "uvloop"]) == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/maps (Linux)")
@pytest.mark.parametrize("loop", [*ENDPOINT_LOOPS, pytest.param("auto", id="auto")])
def test_serve_runs_on_the_loop_asked_for(loop: str) -> None:
    with EmulatorProcess("--loop", loop) as endpoint:
        with urllib.request.urlopen(endpoint.url + "/ping", timeout=5) as answer:
            assert answer.status == 200
        with open(f"/proc/{endpoint.process.pid}/maps", encoding="utf-8") as maps:
            uvloop_loaded = "/uvloop/loop." in maps.read()
    assert uvloop_loaded == (resolve_loop(loop) == "uvloop")
