"""Errors as boto3 raises them: every error SageMaker Runtime and Bedrock Runtime define before the stream
(botocore's modelled ClientError classes, the full ``e.response``), inside it (EventStreamError with boto3's
code), and the transport errors (botocore's classes). Where evstream differs on purpose (a stream cut
short raises; a header value with control characters never reaches the wire) the test says so."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import botocore.config
import botocore.exceptions
import pytest
from fidelity_support import (
    FAKE_KEYS,
    FLAVOURS,
    ONE_ATTEMPT,
    Canned,
    CannedEndpoint,
    Outcome,
    WireSink,
    assert_same_failure,
    boto3_stream,
    endpoint,
    evstream_stream,
    evstream_streams,
    isolated,
    service_error,
    stream_params,
)

from evstream.emulator import EmulatorThread

__all__ = ["endpoint", "isolated"]


def kwargs_for(url: str, config: botocore.config.Config = ONE_ATTEMPT) -> dict[str, Any]:
    return {"region_name": "us-east-1", "endpoint_url": url, "config": config, **FAKE_KEYS}


def run_both(
    flavour: str, client_kwargs: dict[str, Any], service: str = "sagemaker-runtime", **emulator: Any
) -> tuple[Outcome, Outcome]:
    """(evstream, boto3) for the same call, each with its own body."""
    oracle = boto3_stream(service, client_kwargs, stream_params(service, **emulator))
    ours = evstream_stream(flavour, service, client_kwargs, stream_params(service, **emulator))
    return ours, oracle


def without_request_ids(response: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


def assert_same_service_error(ours: Outcome, oracle: Outcome) -> None:
    """The same modelled class (by name, and an instance of the raising client's own class), the same
    ``Error``, members, ``ResponseMetadata`` keys, status, retries and message."""
    assert oracle.stage == "call" and isinstance(oracle.error, botocore.exceptions.ClientError), oracle
    assert_same_failure(ours, oracle)
    error, expected = ours.error, oracle.error
    assert isinstance(error, botocore.exceptions.ClientError), f"`except ClientError` misses {error!r}"
    code = expected.response["Error"]["Code"]
    if hasattr(oracle.exceptions, code):
        assert isinstance(error, getattr(ours.exceptions, code)), (
            f"{type(error).__mro__} is not the raising client's exceptions.{code}"
        )
        assert ours.exceptions.from_code(code) is getattr(ours.exceptions, code)
    assert without_request_ids(error.response) == without_request_ids(expected.response)
    metadata, expected_metadata = error.response["ResponseMetadata"], expected.response["ResponseMetadata"]
    assert set(metadata) == set(expected_metadata), (
        f"ResponseMetadata: {metadata}\nboto3: {expected_metadata}"
    )
    for key in ("HTTPStatusCode", "RetryAttempts", "MaxAttemptsReached"):
        assert metadata.get(key) == expected_metadata.get(key), (
            f"{key}: {metadata}\nboto3: {expected_metadata}"
        )
    assert metadata["RequestId"] == metadata["HTTPHeaders"]["x-amzn-requestid"]
    assert error.operation_name == expected.operation_name
    assert str(error) == str(expected)


# -- before the stream --------------------------------------------------------------------------------

SAGEMAKER_FAULTS = ("validation", "model-error", "service-unavailable", "internal-failure", "throttling")
BEDROCK_FAULTS = SAGEMAKER_FAULTS


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("fault", SAGEMAKER_FAULTS)
def test_service_errors_before_the_stream(
    isolated: Any, endpoint: EmulatorThread, flavour: str, fault: str
) -> None:
    ours, oracle = run_both(flavour, kwargs_for(endpoint.url), fault=fault)
    assert_same_service_error(ours, oracle)


# The modelled errors the local endpoint has no fault for, answered by a canned endpoint.
CANNED_ERRORS = {
    "ModelNotReadyException": service_error(429, "ModelNotReadyException", "Model is not ready"),
    "InternalDependencyException": service_error(530, "InternalDependencyException", "Dependency failed"),
    "unmodelled": service_error(409, "SomethingNew", "A code this botocore does not know"),
}


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("code", list(CANNED_ERRORS))
def test_other_modelled_errors(isolated: Any, flavour: str, code: str) -> None:
    with CannedEndpoint(CANNED_ERRORS[code]) as server:
        ours, oracle = run_both(flavour, kwargs_for(server.url))
    assert_same_service_error(ours, oracle)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("fault", BEDROCK_FAULTS)
def test_bedrock_service_errors_before_the_stream(
    isolated: Any, endpoint: EmulatorThread, flavour: str, fault: str
) -> None:
    ours, oracle = run_both(flavour, kwargs_for(endpoint.url), "bedrock-runtime", fault=fault)
    assert_same_service_error(ours, oracle)


# -- inside the stream --------------------------------------------------------------------------------


def _values(tree: Any) -> Iterator[Any]:
    if isinstance(tree, dict):
        for value in tree.values():
            yield from _values(value)
    else:
        yield tree


def assert_same_stream_error(ours: Outcome, oracle: Outcome) -> None:
    assert oracle.stage == "stream" and isinstance(oracle.error, botocore.exceptions.EventStreamError), oracle
    assert_same_failure(ours, oracle)
    assert isinstance(ours.error, botocore.exceptions.EventStreamError), "`except EventStreamError` misses it"
    assert ours.events == oracle.events, "the events before the error differ"
    error, expected = ours.error.response["Error"], oracle.error.response["Error"]
    assert (error["Code"], error["Message"]) == (expected["Code"], expected["Message"]), (error, expected)
    assert ours.error.operation_name == oracle.error.operation_name


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("fault", ["model-stream-error", "internal-stream-failure", "error-event"])
def test_errors_inside_the_stream(isolated: Any, endpoint: EmulatorThread, flavour: str, fault: str) -> None:
    ours, oracle = run_both(
        flavour, kwargs_for(endpoint.url), fault=fault, after=2, tokens=5, error_code="ModelQuotaExceeded"
    )
    assert_same_stream_error(ours, oracle)
    if fault == "model-stream-error":  # boto3 drops the ErrorCode member; evstream keeps it
        assert "ModelQuotaExceeded" in list(_values(ours.error.response)), ours.error.response  # type: ignore[union-attr]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("fault", ["model-stream-error", "internal-stream-failure"])
def test_bedrock_errors_inside_the_stream(
    isolated: Any, endpoint: EmulatorThread, flavour: str, fault: str
) -> None:
    ours, oracle = run_both(
        flavour, kwargs_for(endpoint.url), "bedrock-runtime", fault=fault, after=2, tokens=5
    )
    assert_same_stream_error(ours, oracle)


# -- transport ----------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full: new connections get no answer until they time out."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # the connection completes in the kernel's queue
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.05)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_connection_refused(isolated: Any, flavour: str) -> None:
    ours, oracle = run_both(flavour, kwargs_for(f"http://127.0.0.1:{_closed_port()}"))
    assert isinstance(oracle.error, botocore.exceptions.EndpointConnectionError), oracle
    assert_same_failure(ours, oracle)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_connect_timeout(isolated: Any, full_backlog: int, flavour: str) -> None:
    config = botocore.config.Config(connect_timeout=0.3, retries={"total_max_attempts": 1})
    ours, oracle = run_both(flavour, kwargs_for(f"http://127.0.0.1:{full_backlog}", config))
    if isinstance(oracle.error, botocore.exceptions.EndpointConnectionError):
        pytest.skip(f"this kernel refuses connections to a full accept queue: {oracle}")
    assert isinstance(oracle.error, botocore.exceptions.ConnectTimeoutError), oracle
    assert_same_failure(ours, oracle)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_read_timeout_before_the_stream(isolated: Any, endpoint: EmulatorThread, flavour: str) -> None:
    config = botocore.config.Config(read_timeout=0.3, retries={"total_max_attempts": 1})
    ours, oracle = run_both(flavour, kwargs_for(endpoint.url, config), fault="stall-headers", stall=3)
    assert isinstance(oracle.error, botocore.exceptions.ReadTimeoutError), oracle
    assert_same_failure(ours, oracle)


# Inside the stream boto3 lets urllib3's exceptions through (or ends quietly on a frame cut short);
# evstream raises botocore's classes instead: a deliberate difference.
STREAM_TRANSPORT_FAULTS = {
    "disconnect": botocore.exceptions.ResponseStreamingError,
    "reset": botocore.exceptions.ResponseStreamingError,
    "truncate": botocore.exceptions.ResponseStreamingError,
    "stall": botocore.exceptions.ReadTimeoutError,
}


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("fault", list(STREAM_TRANSPORT_FAULTS))
def test_transport_errors_inside_the_stream(
    isolated: Any, endpoint: EmulatorThread, flavour: str, fault: str
) -> None:
    config = botocore.config.Config(read_timeout=0.3, retries={"total_max_attempts": 1})
    params = stream_params(fault=fault, after=2, tokens=5, stall=3)
    ours = evstream_stream(flavour, "sagemaker-runtime", kwargs_for(endpoint.url, config), params)
    assert ours.stage == "stream", ours
    assert isinstance(ours.error, STREAM_TRANSPORT_FAULTS[fault]), ours
    assert len(ours.events) == 2, ours


# -- header parameters: control characters never reach the wire ---------------------------------------

BAD_VALUES = (
    "x\r\n\tX-Evil: 1",
    "x\r\nX-Evil: 1",
    "x\nX-Evil: 1",
    "x\rX-Evil: 1",
    "x\x00y",
    "x\x7fy",
    "caf\u00e9",
)
SAGEMAKER_HEADERS = (
    "ContentType",
    "Accept",
    "CustomAttributes",
    "TargetVariant",
    "TargetContainerHostname",
    "InferenceId",
    "InferenceComponentName",
    "SessionId",
)
BEDROCK_HEADERS = (
    "contentType",
    "accept",
    "trace",
    "guardrailIdentifier",
    "guardrailVersion",
    "performanceConfigLatency",
    "serviceTier",
)


def _refused_everywhere(flavour: str, service: str, parameter: str, config: botocore.config.Config) -> None:
    with WireSink() as sink:
        calls = [{**stream_params(service, tokens=1), parameter: value} for value in BAD_VALUES]
        outcomes = evstream_streams(flavour, service, kwargs_for(sink.url, config), calls)
        assert len(outcomes) == len(BAD_VALUES), outcomes
        for value, outcome in zip(BAD_VALUES, outcomes):
            assert isinstance(outcome.error, botocore.exceptions.ParamValidationError), (
                f"{parameter}={value!r}: {outcome}"
            )
            assert outcome.stage == "call"
        assert not sink.received, f"{parameter}: bytes reached the wire: {bytes(sink.received)!r}"


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("parameter", SAGEMAKER_HEADERS)
def test_header_injection_is_refused(isolated: Any, flavour: str, parameter: str) -> None:
    _refused_everywhere(flavour, "sagemaker-runtime", parameter, ONE_ATTEMPT)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("parameter", BEDROCK_HEADERS)
def test_bedrock_header_injection_is_refused(isolated: Any, flavour: str, parameter: str) -> None:
    _refused_everywhere(flavour, "bedrock-runtime", parameter, ONE_ATTEMPT)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_header_injection_is_refused_without_parameter_validation(isolated: Any, flavour: str) -> None:
    config = botocore.config.Config(parameter_validation=False, retries={"total_max_attempts": 1})
    _refused_everywhere(flavour, "sagemaker-runtime", "CustomAttributes", config)


def test_boto3_puts_a_folded_header_on_the_wire(isolated: Any) -> None:
    """Why evstream refuses: boto3 sends ``x\\r\\n\\tX-Evil: 1`` as a folded header line."""
    with WireSink() as sink:
        params = {**stream_params(tokens=1), "CustomAttributes": "x\r\n\tX-Evil: 1"}
        boto3_stream("sagemaker-runtime", kwargs_for(sink.url), params)
    assert b"x\r\n\tX-Evil: 1\r\n" in sink.received, "boto3 no longer sends it: the difference can go"


# -- evstream's retry rule: retried until the first event is delivered, never after -------------------


# fault: (the error when it is not retried, retried when it comes before any event)
RETRY_RULE_FAULTS: dict[str, tuple[type[Exception], bool]] = {
    "disconnect": (botocore.exceptions.ResponseStreamingError, True),  # a dropped connection
    "internal-stream-failure": (botocore.exceptions.EventStreamError, True),  # the service's failure
    "model-stream-error": (botocore.exceptions.EventStreamError, False),  # the model's: it would fail again
}


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("after", [0, 2], ids=["before-any-event", "after-two-events"])
@pytest.mark.parametrize("fault", list(RETRY_RULE_FAULTS))
def test_stream_failures_are_retried_only_before_the_first_event(
    isolated: Any, endpoint: EmulatorThread, flavour: str, fault: str, after: int
) -> None:
    """A dropped connection or an InternalStreamFailure before any event is retried (boto3 cannot: it
    raises); after an event nothing is (the caller has seen part of the answer). The count and the
    backoff stay botocore's (standard mode counts a ResponseStreamingError as transient)."""
    error, retried_before_events = RETRY_RULE_FAULTS[fault]
    config = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 3})
    params = stream_params(fault=fault, after=after, fault_times=1, tokens=4)
    ours = evstream_stream(flavour, "sagemaker-runtime", kwargs_for(endpoint.url, config), params)
    tried = [r for r in endpoint.emulator.requests if r.body == params["Body"]]
    if after == 0 and retried_before_events:
        assert len(tried) == 2, f"{len(tried)} attempts (expected a retry): {ours}"
        assert ours.stage == "done" and len(ours.events) == 4, ours
    else:
        assert len(tried) == 1, f"{len(tried)} attempts (expected none again): {ours}"
        assert isinstance(ours.error, error), ours
        assert len(ours.events) == after, ours


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_200_answer_that_is_not_an_event_stream_is_not_retried(isolated: Any, flavour: str) -> None:
    """boto3 ends such a stream quietly; evstream may do the same or raise botocore's error, but the
    model must not be invoked again."""
    answer = Canned(
        200, {"Content-Type": "application/json", "x-amzn-RequestId": "r-1"}, b'{"not": "a stream"}'
    )
    config = botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 3})
    with CannedEndpoint(answer) as server:
        ours = evstream_stream(flavour, "sagemaker-runtime", kwargs_for(server.url, config), stream_params())
        assert len(server.requests) == 1, f"invoked {len(server.requests)} times: {ours}"
    assert ours.error is None or isinstance(
        ours.error, (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
    ), ours


# -- the service's patterns and lengths, checked before sending (boto3 leaves them to the service) -------

OUT_OF_MODEL = {
    "EndpointName-pattern": {"EndpointName": "has space"},
    "EndpointName-length": {"EndpointName": "a" * 64},
    "CustomAttributes-length": {"CustomAttributes": "x" * 1025},
}


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("validation", [True, False], ids=["validated", "parameter_validation-off"])
def test_values_outside_the_model_are_refused_before_sending(
    isolated: Any, flavour: str, validation: bool
) -> None:
    """Refused as ParamValidationError without a round trip; with parameter_validation=False they are
    sent, as boto3 sends them."""
    config = botocore.config.Config(parameter_validation=validation, retries={"total_max_attempts": 1})
    for case, values in OUT_OF_MODEL.items():
        with WireSink() as sink:
            outcome = evstream_stream(
                flavour, "sagemaker-runtime", kwargs_for(sink.url, config), {**stream_params(), **values}
            )
        if validation:
            assert isinstance(outcome.error, botocore.exceptions.ParamValidationError), f"{case}: {outcome}"
            assert not sink.received, f"{case}: bytes reached the wire"
        else:
            assert sink.received.startswith(b"POST /endpoints/"), f"{case}: {outcome}"
