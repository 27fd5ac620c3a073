"""The HTTP/2 listener's latency profile: bidirectional answers paced by TTFT and ITL draws, each
generated record stamped with its send and due times on the clock the HTTP/1.1 listener stamps with
(read here, in the client, as each event arrives)."""

from __future__ import annotations

import json
import ssl
import statistics
from collections.abc import Iterator
from typing import Any

import pytest
from emulator_support import endpoint_loop as endpoint_loop  # the fixture
from http2_support import KEYS, local
from http2_support import tls as tls  # the fixture

from evstream.emulator import Behavior, generate_records
from evstream.emulator.http2 import Bidi, Http2EndpointThread
from evstream.emulator.latency import DUE_FIELD, STAMP_FIELD, clock_ns
from evstream.sagemaker.http2 import InputValidationError, bedrock_http2_client, http2_client

MS = 1_000_000
TTFT_MS, ITL_MS, TOKENS = 60, 15, 6
# A timer may fire up to this much before its due time (uvloop's are millisecond-coarse).
EARLY_NS = MS


@pytest.fixture(scope="module")
def paced(tls: tuple[ssl.SSLContext, str], endpoint_loop: str) -> Iterator[tuple[Http2EndpointThread, str]]:
    """An endpoint generating TGI records with a constant profile, stamped, and its CA file; on
    asyncio's loop, then on uvloop."""
    behavior = Behavior(format="tgi", tokens=TOKENS, ttft=f"{TTFT_MS}ms", itl=f"{ITL_MS}ms", stamp=True)
    generate = Bidi(mode="generate")
    with Http2EndpointThread(ssl=tls[0], bidi=generate, behavior=behavior, loop=endpoint_loop) as server:
        yield server, tls[1]


def exchange(server: Http2EndpointThread, ca: str, body: bytes) -> tuple[int, list[tuple[int, bytes]]]:
    """Send ``body`` as one turn; (the time the input ended, [(receive time, payload), ...])."""
    runtime = http2_client(**local(server, ca))
    with runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="model") as stream:
        stream.send(body, data_type="UTF8", completion_state="COMPLETE")
        stream.close_input()
        ended = clock_ns()
        received = [(clock_ns(), event["PayloadPart"]["Bytes"]) for event in stream]
    return ended, received


def record(payload: bytes) -> dict[str, Any]:
    value = json.loads(payload.decode().removeprefix("data:"))
    assert isinstance(value, dict)
    return value


def unstamped(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in (STAMP_FIELD, DUE_FIELD)}


def test_generated_records_are_paced_and_stamped_on_the_shared_clock(
    paced: tuple[Http2EndpointThread, str],
) -> None:
    ended, received = exchange(*paced, b'{"inputs": "hello"}')
    records = [record(payload) for _, payload in received]
    expected = [record(r) for r in generate_records(Behavior(format="tgi", tokens=TOKENS))]
    assert [unstamped(r) for r in records] == expected  # one record per event, in order
    due = [r[DUE_FIELD] for r in records]
    sent = [r[STAMP_FIELD] for r in records]
    # The profile: the first token TTFT after the input ended, then one every ITL (to the nanosecond).
    assert [b - a for a, b in zip(due, due[1:])] == pytest.approx([ITL_MS * MS] * (TOKENS - 1), abs=1)
    assert ended - 50 * MS <= due[0] - TTFT_MS * MS <= ended + 200 * MS
    # Sent when due, never before (so the pacing is real), and read by the client after it was sent:
    # receive time minus send time is the client's delay, on one clock.
    assert all(s >= d - EARLY_NS for s, d in zip(sent, due))
    assert all(0 <= at - s < 1_000 * MS for (at, _), s in zip(received, sent))
    assert received[-1][0] - ended >= (TTFT_MS + (TOKENS - 1) * ITL_MS) * MS - EARLY_NS


def test_a_turn_body_sets_its_generation(paced: tuple[Http2EndpointThread, str]) -> None:
    _, received = exchange(*paced, json.dumps({"inputs": "x", "emulator": {"tokens": 3}}).encode())
    assert len(received) == 3
    _, received = exchange(*paced, b'{"inputs": "x", "parameters": {"max_new_tokens": 2}}')
    assert len(received) == 2
    with pytest.raises(InputValidationError, match="tokens"):
        exchange(*paced, b'{"inputs": "x", "emulator": {"tokens": -1}}')
    assert paced[0].endpoint.exchanges[-1].error.startswith("tokens")


def test_a_long_generation_streams_every_record(tls: tuple[ssl.SSLContext, str]) -> None:
    behavior = Behavior(format="lmi", tokens=5000)  # past the remembered generations: made as sent
    with Http2EndpointThread(ssl=tls[0], bidi=Bidi(mode="generate"), behavior=behavior) as server:
        runtime = http2_client(**local(server, tls[1]))
        with runtime.invoke_endpoint_with_bidirectional_stream(EndpointName="model") as stream:
            stream.send(b"{}", data_type="UTF8", completion_state="COMPLETE")
            stream.close_input()
            parts = [event["PayloadPart"] for event in stream]
    assert [p["Bytes"] for p in parts] == list(generate_records(behavior))
    # One answer: every part PARTIAL but the last.
    assert [p["CompletionState"] for p in parts] == ["PARTIAL"] * 4999 + ["COMPLETE"]


def test_jittered_gaps_follow_their_distribution(tls: tuple[ssl.SSLContext, str]) -> None:
    behavior = Behavior(tokens=40, ttft="normal:30ms,5ms", itl="uniform:1ms,9ms", stamp=True, seed=7)
    with Http2EndpointThread(ssl=tls[0], bidi=Bidi(mode="generate"), behavior=behavior) as server:
        _, received = exchange(server, tls[1], b"{}")
    due = [record(payload)[DUE_FIELD] for _, payload in received]
    gaps = [(b - a) / MS for a, b in zip(due, due[1:])]
    assert len(gaps) == 39 and all(1 - 1e-6 <= g <= 9 + 1e-6 for g in gaps)
    assert statistics.pstdev(gaps) > 1  # drawn, not constant (uniform 1-9 ms: 2.3 ms)
    assert 3.5 < statistics.mean(gaps) < 6.5


def test_bedrock_answers_a_generation_in_several_stamped_chunks(tls: tuple[ssl.SSLContext, str]) -> None:
    behavior = Behavior(format="anthropic", tokens=5, itl="2ms", stamp=True)
    with Http2EndpointThread(ssl=tls[0], bidi=Bidi(mode="generate"), behavior=behavior) as server:
        runtime = bedrock_http2_client(**{**KEYS, "endpoint_url": server.url, "verify": tls[1]})
        with runtime.invoke_model_with_bidirectional_stream(modelId="anthropic.model") as stream:
            stream.send(b'{"prompt": "hi"}')
            stream.close_input()
            chunks = [json.loads(event["chunk"]["bytes"]) for event in stream]
    expected = [json.loads(r) for r in generate_records(Behavior(format="anthropic", tokens=5))]
    assert len(chunks) == len(expected) > 5  # the tokens, and the family's opening and closing events
    assert [unstamped(c) for c in chunks] == expected
    assert all(c[STAMP_FIELD] >= c[DUE_FIELD] - EARLY_NS for c in chunks)


@pytest.mark.parametrize("mode", ["echo", "conversation"])
def test_the_clients_own_bytes_are_paced_but_never_stamped(
    tls: tuple[ssl.SSLContext, str], mode: str
) -> None:
    behavior = Behavior(ttft="25ms", itl="5ms", stamp=True)
    with Http2EndpointThread(ssl=tls[0], bidi=Bidi(mode=mode, parts=2), behavior=behavior) as server:
        started = clock_ns()
        _, received = exchange(server, tls[1], b'{"a": 1}')
    payloads = [payload for _, payload in received]
    assert payloads == ([b'{"a": 1}'] if mode == "echo" else [b"turn 1: ", b'{"a": 1}'])
    assert received[0][0] - started >= 25 * MS - EARLY_NS
    assert received[-1][0] - started >= (25 + 5 * (len(received) - 1)) * MS - EARLY_NS
