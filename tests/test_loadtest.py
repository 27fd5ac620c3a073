"""The load tester's parts: histograms, latency profiles, workloads, token counting, the step runners."""

from __future__ import annotations

import json
import math
import pickle
import random
from collections.abc import Iterator
from typing import Any

import pytest
from emulator_support import endpoint_loop as endpoint_loop  # the fixture

from evstream import sagemaker
from evstream.emulator import Behavior, EmulatorThread
from evstream.emulator.latency import (
    STAMP_FIELD,
    Distribution,
    Pacing,
    clock_ns,
    parse_duration,
    stamp_record,
)
from evstream.loadtest import (
    BEDROCK_FAMILIES,
    TEMPLATES,
    Histogram,
    Step,
    StepResult,
    Target,
    TokenCounter,
    Workload,
    load_prompts,
    run_step_sync,
)
from evstream.loadtest.histogram import RELATIVE_ERROR, bucket_bounds, bucket_of

pytest.importorskip("aiohttp", reason="the load tester drives the asyncio client (aiohttp)")
pytest.importorskip("awscrt", reason="the client signs with awscrt")

KEYS: dict[str, Any] = {
    "aws_access_key_id": "AKIDTEST",
    "aws_secret_access_key": "secret",
    "region_name": "us-east-1",
}


# -- histograms -----------------------------------------------------------------------------------------


def nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def test_buckets_cover_every_value_in_order() -> None:
    last = -1
    for value in [*range(3000), *(int(1.07**k) for k in range(120, 400))]:
        index = bucket_of(value)
        low, high = bucket_bounds(index)
        assert low <= value <= high
        assert index >= last
        last = index
        if value >= 512:
            assert (high - low) / 2 <= low * RELATIVE_ERROR


def test_exact_percentiles_while_samples_are_few() -> None:
    rng = random.Random(1)
    values = [rng.randrange(10**9) for _ in range(999)]
    histogram = Histogram()
    histogram.record_many(values)
    assert histogram.exact
    for q in (0, 1, 50, 90, 99, 99.9, 100):
        assert histogram.percentile(q) == nearest_rank(values, q)
    assert histogram.minimum == min(values) and histogram.maximum == max(values)
    assert histogram.mean == pytest.approx(sum(values) / len(values))


def test_bucket_percentiles_stay_within_the_relative_error() -> None:
    rng = random.Random(2)
    values = [int(rng.lognormvariate(16, 1.5)) for _ in range(5000)]
    histogram = Histogram(exact_limit=100)
    histogram.record_many(values)
    assert not histogram.exact
    for q in (10, 50, 90, 99, 99.9):
        exact = nearest_rank(values, q)
        assert abs(histogram.percentile(q) - exact) <= exact * RELATIVE_ERROR + 1
    assert histogram.percentile(100) == max(values)


@pytest.mark.parametrize("exact_limit", [100_000, 50])
def test_merging_parts_gives_the_histogram_of_the_whole(exact_limit: int) -> None:
    rng = random.Random(3)
    values = [rng.randrange(10**8) for _ in range(3000)]
    whole = Histogram(exact_limit)
    whole.record_many(values)
    parts = [Histogram(exact_limit) for _ in range(3)]
    for n, value in enumerate(values):
        parts[n % 3].record(value)
    merged = Histogram(exact_limit)
    for part in parts:
        merged.merge(part)
    assert merged.count == whole.count and merged.buckets == whole.buckets
    assert merged.exact == whole.exact
    for q in (50, 90, 99, 100):
        assert merged.percentile(q) == whole.percentile(q)


def test_recording_folds_in_small_pieces_and_loses_nothing() -> None:
    """Values wait unfolded only in small batches: a fold runs on the recording event loop at once,
    and a large one would be a stall in the measurement it is part of."""
    histogram = Histogram(exact_limit=1000)
    longest = 0
    for value in range(100_000):
        histogram.record(value * 37)
        longest = max(longest, len(histogram._pending))
    assert longest <= 512
    assert histogram.count == 100_000 and histogram.maximum == 99_999 * 37
    assert histogram.total == 37 * 99_999 * 100_000 // 2


def test_histogram_travels_by_dict_and_pickle() -> None:
    histogram = Histogram(exact_limit=10)
    histogram.record_many(range(0, 10**6, 997))
    assert Histogram.from_dict(json.loads(json.dumps(histogram.to_dict()))) == histogram
    assert pickle.loads(pickle.dumps(histogram)) == histogram
    broken = histogram.to_dict()
    broken["count"] += 1
    with pytest.raises(ValueError, match="do not add up"):
        Histogram.from_dict(broken)
    assert math.isnan(Histogram().percentile(50))
    with pytest.raises(ValueError):
        histogram.percentile(101)


# -- latency profiles and stamps ------------------------------------------------------------------------


def test_distributions_parse_and_sample() -> None:
    assert parse_duration("200ms") == pytest.approx(0.2)
    assert Distribution.parse("150us") == Distribution("constant", 150e-6)
    assert Distribution.parse("normal:20ms,4ms") == Distribution("normal", 0.02, 0.004)
    assert Distribution.parse("uniform:64,256", durations=False) == Distribution("uniform", 64, 256)
    rng = random.Random(4)
    lognormal = Distribution.parse("lognormal:20ms,5ms")
    draws = [lognormal.sample(rng) for _ in range(20000)]
    assert sum(draws) / len(draws) == pytest.approx(0.02, rel=0.03)
    assert all(d >= 0 for d in draws)
    uniform = Distribution.parse("uniform:1s,2s")
    assert all(1 <= uniform.sample(rng) <= 2 for _ in range(100))
    assert min(Distribution.parse("normal:1ms,5ms").sample(rng) for _ in range(200)) == 0.0


@pytest.mark.parametrize(
    "text",
    ["200", "fast", "normal:20ms", "gamma:1ms,2ms", "uniform:2ms,1ms", "normal:-1ms,1ms", "constant:1ms,2ms"],
)
def test_bad_distributions_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Distribution.parse(text)


def test_pacing_follows_the_profile() -> None:
    pacing = Pacing.of("200ms", "20ms", 0.0, seed=0)
    assert pacing is not None
    assert [round(pacing.next_due(n), 6) for n in range(4)] == [0.2, 0.22, 0.24, 0.26]
    by_rate = Pacing.of("", "", 50.0, seed=0)
    assert by_rate is not None
    assert [round(by_rate.next_due(n), 6) for n in range(3)] == [0.0, 0.02, 0.04]
    assert Pacing.of("", "", 0.0, seed=0) is None


def test_stamps_are_json_members_taken_at_send_time() -> None:
    record = b'data:{"token": {"text": " a"}}\n\n'
    before = clock_ns()
    stamped = stamp_record(record)
    value = json.loads(stamped[5:])
    assert before <= value[STAMP_FIELD] <= clock_ns()
    assert value["token"] == {"text": " a"}
    assert stamp_record(b"data: [DONE]\n\n") == b"data: [DONE]\n\n"


def test_the_endpoint_refuses_stamps_on_straddled_parts_and_bad_profiles() -> None:
    with pytest.raises(ValueError, match="straddle"):
        Behavior(stamp=True, straddle=True)
    with pytest.raises(ValueError, match="not a duration"):
        Behavior(itl="20")


# -- workloads and token counting ----------------------------------------------------------------------


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_makes_a_json_body_with_the_output_length(template: str) -> None:
    workload = Workload(template, output_tokens=Distribution("constant", 77), emulator={"stamp": True})
    body = json.loads(workload.body(random.Random(0)))
    assert "77" in json.dumps(body)
    assert body["emulator"] == {"stamp": True, "tokens": 77}
    assert workload.bedrock == (template in BEDROCK_FAMILIES)


def test_kept_bodies_are_the_bodies_of_their_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    from evstream.loadtest import workload as workload_module

    monkeypatch.setattr(workload_module, "_KEPT_BODIES", 50)
    inputs, outputs = Distribution("uniform", 1, 40), Distribution("uniform", 1, 9)
    kept = Workload("tgi", input_tokens=inputs, output_tokens=outputs, emulator={})
    rng, fresh_rng = random.Random(5), random.Random(5)
    for _ in range(2000):
        body, max_tokens = kept.request(rng)
        # A workload that keeps nothing yet makes the same body from the same draws.
        assert (body, max_tokens) == Workload("tgi", input_tokens=inputs, output_tokens=outputs,
                                              emulator={}).request(fresh_rng)  # fmt: skip
        document = json.loads(body)
        assert document["parameters"]["max_new_tokens"] == document["emulator"]["tokens"] == max_tokens
        assert 1 <= len(document["inputs"].split()) <= 40
        assert len(kept._bodies) <= 50


def test_prompts_from_jsonl(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / "prompts.jsonl"  # type: ignore[operator]
    path.write_text('{"prompt": "hi", "max_tokens": 5}\n\n{"text": "there"}\n')
    prompts = load_prompts(str(path), 9)
    assert [(p.text, p.max_tokens) for p in prompts] == [("hi", 5), ("there", 9)]
    path.write_text('{"prompt": "hi"}\nnot json\n')
    with pytest.raises(ValueError, match=r"prompts.jsonl:2: not JSON"):
        load_prompts(str(path), 9)
    path.write_text('{"prompt": 3}\n')
    with pytest.raises(ValueError, match=r":1: want"):
        load_prompts(str(path), 9)


def tgi_records(n: int) -> bytes:
    records = []
    for i in range(n):
        record = {"token": {"id": i, "text": f" t{i}", "special": i == 2}, "generated_text": None}
        records.append(stamp_record(b"data:" + json.dumps(record).encode() + b"\n\n"))
    return b"".join(records)


@pytest.mark.parametrize("cut", [1, 7, 64, 100_000])
def test_token_counter_counts_records_with_text_cut_anywhere(cut: int) -> None:
    data = tgi_records(10)
    counter = TokenCounter("tgi")
    tokens = stamps = 0
    for i in range(0, len(data), cut):
        n, stamp, _ = counter.feed(data[i : i + cut])
        tokens += n
        stamps += bool(stamp)
    tokens += counter.close()
    assert tokens == 9  # the special token carries no text
    assert stamps >= 1


def test_token_counter_gives_the_stamp_of_each_record() -> None:
    counter = TokenCounter("tgi")
    data = tgi_records(3)
    records = [r + b"\n\n" for r in data.split(b"\n\n") if r]
    stamps = [counter.feed(r)[1] for r in records]
    assert stamps == [json.loads(r[5:])[STAMP_FIELD] for r in records]


def test_token_counter_events_mode_reads_only_the_stamp() -> None:
    counter = TokenCounter("tgi", "events")
    record = stamp_record(b'data:{"token": {"text": "x"}}\n\n')
    tokens, stamp, due = counter.feed(record)
    assert tokens == 1 and stamp == json.loads(record[5:])[STAMP_FIELD] and due == 0
    assert counter.feed(b"no stamp here") == (1, 0, 0)
    paced = stamp_record(b'data:{"token": {"text": "x"}}\n\n', due_ns=12345)
    value = json.loads(paced[5:])
    assert counter.feed(paced) == (1, value[STAMP_FIELD], 12345)
    assert TokenCounter("tgi").feed(paced) == (1, value[STAMP_FIELD], 12345)
    with pytest.raises(ValueError):
        TokenCounter("tgi", "guess")


def test_token_counter_reads_bedrock_chunks() -> None:
    counter = TokenCounter("anthropic")
    chunks = [
        {"type": "message_start", "message": {"role": "assistant"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " there"}},
        {"type": "message_stop"},
    ]
    assert sum(counter.feed(json.dumps(c).encode())[0] for c in chunks) + counter.close() == 2


# -- steps against the local endpoint -------------------------------------------------------------------

TOKENS = 8


PROFILE = Behavior(ttft="constant:30ms", itl="uniform:2ms,4ms", stamp=True, tokens=TOKENS)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[EmulatorThread]:
    with EmulatorThread(behavior=PROFILE) as server:
        yield server


@pytest.fixture(scope="module")
def paced_on_each_loop(endpoint_loop: str) -> Iterator[EmulatorThread]:
    """The endpoint of :data:`PROFILE` on asyncio's loop, then on uvloop (what `serve` picks)."""
    with EmulatorThread(behavior=PROFILE, loop=endpoint_loop) as server:
        yield server


def target(endpoint: EmulatorThread, template: str = "tgi", **emulator: object) -> Target:
    client_factory = (
        sagemaker.bedrock_async_client if template in BEDROCK_FAMILIES else sagemaker.async_client
    )
    client = client_factory(endpoint_url=endpoint.url, max_pool_connections=16, max_attempts=1, **KEYS)
    if template in BEDROCK_FAMILIES:
        emulator.setdefault("format", template)
    workload = Workload(template, output_tokens=Distribution("constant", TOKENS), emulator=dict(emulator))
    return Target(client, "model", workload)


def test_a_concurrency_step_measures_every_token(paced_on_each_loop: EmulatorThread) -> None:
    result = run_step_sync(
        target(paced_on_each_loop), Step(concurrency=4, duration=0.6, warmup=0.2), "asyncio"
    )
    assert result.errors == {}
    assert result.requests >= 4
    assert result.output_tokens == result.requests * TOKENS
    assert result.ttft.count == result.e2e.count == result.requests
    assert result.itl.count == result.requests * (TOKENS - 1)
    assert result.delay.count == result.requests * TOKENS  # every record was stamped
    assert result.ttft.minimum >= 30e6  # the endpoint waits 30 ms before the first token
    assert result.e2e.minimum >= 30e6 + (TOKENS - 1) * 2e6
    assert 0 < result.delay.percentile(50) < result.ttft.minimum
    assert result.late.count == result.delay.count  # paced records say when they were due
    assert result.late.percentile(50) < 50e6  # a light load: the endpoint keeps its schedule
    assert result.window_tokens > 0 and result.tokens_per_s > 0 and result.requests_per_s > 0
    (load,) = result.workers
    assert load.events == result.window_events and load.cpu_s > 0 and load.streams == 4
    assert result.lag.count > 0
    assert 0 < result.in_flight <= 4  # never more open than asked


def test_a_request_count_step_measures_exactly_that_many(endpoint: EmulatorThread) -> None:
    result = run_step_sync(target(endpoint), Step(concurrency=3, requests=7, warmup=0.1), "asyncio")
    assert result.requests == 7 and result.e2e.count == 7 and result.errors == {}


def test_an_open_loop_step_sends_poisson_arrivals(endpoint: EmulatorThread) -> None:
    result = run_step_sync(target(endpoint), Step(rate=40.0, duration=0.8, warmup=0.1, seed=5), "asyncio")
    assert result.errors == {}
    assert 10 <= result.requests <= 90  # 32 expected
    assert result.output_tokens == result.requests * TOKENS


@pytest.mark.parametrize("family", sorted(BEDROCK_FAMILIES))
def test_bedrock_steps_count_tokens_from_chunks(endpoint: EmulatorThread, family: str) -> None:
    result = run_step_sync(target(endpoint, family), Step(concurrency=2, requests=4, warmup=0), "asyncio")
    assert result.errors == {} and result.requests == 4
    assert result.output_tokens == 4 * TOKENS


def test_errors_are_counted_by_class(endpoint: EmulatorThread) -> None:
    failing = target(endpoint, fault="model-stream-error", after=2)
    result = run_step_sync(failing, Step(concurrency=2, requests=4, warmup=0), "asyncio")
    assert result.requests == 0
    assert result.errors == {"ModelStreamError": 4}


def test_boto3_thread_per_stream_runs_the_same_step(endpoint: EmulatorThread) -> None:
    pytest.importorskip("boto3")
    from evstream.loadtest import Boto3Target, run_step_threads

    workload = Workload("tgi", output_tokens=Distribution("constant", TOKENS), emulator={})
    boto = Boto3Target("model", workload, endpoint_url=endpoint.url, **KEYS)
    result = run_step_threads(boto, Step(concurrency=3, duration=0.5, warmup=0.2))
    assert result.client == "boto3" and result.errors == {}
    assert result.requests >= 3
    assert result.output_tokens == result.requests * TOKENS
    assert result.delay.count == result.requests * TOKENS
    assert result.ttft.minimum >= 30e6
    assert 0 < result.in_flight <= 3  # never more open than asked


def test_step_results_merge_and_travel(endpoint: EmulatorThread) -> None:
    a = run_step_sync(target(endpoint), Step(concurrency=2, requests=3, warmup=0), "asyncio")
    b = run_step_sync(target(endpoint), Step(concurrency=1, requests=2, warmup=0), "asyncio")
    merged = StepResult.merged([StepResult.from_dict(a.to_dict()), StepResult.from_dict(b.to_dict())])
    assert merged.concurrency == 3 and merged.requests == 5
    assert merged.ttft.count == 5 and merged.ttft.maximum == max(a.ttft.maximum, b.ttft.maximum)
    assert len(merged.workers) == 2
    assert merged.window_tokens == a.window_tokens + b.window_tokens


def test_steps_are_checked_and_split() -> None:
    with pytest.raises(ValueError):
        Step(concurrency=2, rate=1.0)
    with pytest.raises(ValueError):
        Step(concurrency=2, duration=0)
    parts = [Step(concurrency=7, requests=10).split(3, i) for i in range(3)]
    assert [p.concurrency for p in parts] == [3, 2, 2] and sum(p.requests for p in parts) == 10
    assert len({p.seed for p in parts}) == 3
    with pytest.raises(ValueError, match="at least 4"):
        Step(concurrency=3).split(4, 0)


def test_boto3_errors_get_the_same_class_names(endpoint: EmulatorThread) -> None:
    pytest.importorskip("boto3")
    from evstream.loadtest import Boto3Target, run_step_threads

    workload = Workload(
        "tgi", output_tokens=Distribution("constant", TOKENS), emulator={"fault": "model-stream-error"}
    )
    boto = Boto3Target("model", workload, endpoint_url=endpoint.url, **KEYS)
    result = run_step_threads(boto, Step(concurrency=2, requests=4, warmup=0))
    assert result.requests == 0 and result.errors == {"ModelStreamError": 4}


def test_paced_streams_survive_clients_that_leave(paced_on_each_loop: EmulatorThread) -> None:
    import socket
    import time

    host, port = paced_on_each_loop.url.rsplit("/", 1)[-1].split(":")
    request = (
        b"POST /endpoints/m/invocations-response-stream HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    )
    for _ in range(5):  # leave during the wait for the first token, and mid-stream
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(request)
            sock.settimeout(5)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(request)
        sock.settimeout(5)
        time.sleep(0.045)
        sock.recv(65536)
    result = run_step_sync(target(paced_on_each_loop), Step(concurrency=2, requests=2, warmup=0), "asyncio")
    assert result.errors == {} and result.output_tokens == 2 * TOKENS


def test_paced_streams_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")
    from evstream.emulator import Emulator
    from evstream.loadtest import run_step

    async def main() -> StepResult:
        emulator = Emulator(behavior=Behavior(ttft="10ms", itl="1ms", stamp=True, tokens=TOKENS))
        await emulator.start()
        try:
            client = sagemaker.async_client(endpoint_url=emulator.url, max_attempts=1, **KEYS)
            workload = Workload("tgi", output_tokens=Distribution("constant", TOKENS), emulator={})
            try:
                return await run_step(
                    Target(client, "m", workload), Step(concurrency=3, requests=6, warmup=0)
                )
            finally:
                await client.close()
        finally:
            await emulator.close()

    result = uvloop.run(main())
    assert result.errors == {} and result.output_tokens == 6 * TOKENS and result.delay.count == 6 * TOKENS


def test_boto3_open_loop(endpoint: EmulatorThread) -> None:
    pytest.importorskip("boto3")
    from evstream.loadtest import Boto3Target, run_step_threads

    workload = Workload("tgi", output_tokens=Distribution("constant", TOKENS), emulator={})
    boto = Boto3Target("model", workload, endpoint_url=endpoint.url, **KEYS)
    result = run_step_threads(boto, Step(rate=30.0, duration=0.6, warmup=0.1, seed=3))
    assert result.errors == {} and 5 <= result.requests <= 60
    assert result.output_tokens == result.requests * TOKENS


def synthetic(client: str, concurrency: int, delay_ms: float, **load: float) -> StepResult:
    from evstream.loadtest import WorkerLoad

    result = StepResult(client, concurrency=concurrency, requests=10, output_tokens=100, window_ns=10**9)
    result.window_tokens = 100
    for n in range(100):
        result.ttft.record(200_000_000 + n)
        result.itl.record(20_000_000 + n)
        result.delay.record(round(delay_ms * 1e6) + n)
        result.late.record(round(load.get("late_ms", 0) * 1e6))
    result.e2e.record(1_000_000_000)
    worker = WorkerLoad("host:1", 10**9, cpu_s=load.get("cpu", 0.1), events=100, span_s=1.0)
    worker.wait_s = load.get("wait", 0.0)
    worker.lag_p99_ns = load.get("lag_ms", 0.1) * 1e6
    result.workers.append(worker)
    return result


def test_report_says_what_limited_each_step(tmp_path: pytest.TempPathFactory) -> None:
    import io

    from evstream.loadtest.report import comparison, csv_text, dump_json, summary, table, warnings

    ours = synthetic("evstream", 64, 0.5)
    theirs = synthetic("boto3", 64, 40.0, cpu=0.9)
    starved = synthetic("evstream", 1000, 9.0, wait=0.3, late_ms=80)
    theirs.in_flight = 10.0
    ours.in_flight = 63.5
    results = [ours, theirs, starved]
    assert comparison(results) == [
        "at 64: client delay p99 0.50 ms with evstream, 40.0 ms with boto3 threads; ITL p99 as reported: "
        "20.0 vs 20.0 ms"
    ]
    notes = "\n".join(warnings(results))
    assert "boto3 at 64: client-bound" in notes and "evstream at 64" not in notes
    assert "evstream at 1000: the machine is busy" in notes and "fell behind its latency profile" in notes
    assert "boto3 at 64: only 10 streams were open on average, not 64" in notes
    assert "evstream at 64: only" not in notes
    row = summary(ours)
    assert row["output_tokens_per_s"] == 100.0
    assert row["delay_p99_ms"] == pytest.approx(0.5, abs=0.001) and row["exact_percentiles"]
    out = io.StringIO()
    table(results, out)
    assert "client-bound" in out.getvalue() and "machine busy" in out.getvalue()
    lines = csv_text(results).splitlines()
    assert len(lines) == 4 and lines[0].startswith("client,concurrency")
    out = io.StringIO()
    dump_json(results, {"endpoint": "local"}, out)
    document = json.loads(out.getvalue())
    assert [s["summary"]["client"] for s in document["steps"]] == ["evstream", "boto3", "evstream"]
    assert Histogram.from_dict(document["steps"][0]["histograms"]["ttft"]).count == 100
