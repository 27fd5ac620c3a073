"""What the sync and asyncio clients decide in one place: whether to retry (``BaseClient._retry_delay``:
botocore's handler decides, evstream vetoes what a retry cannot mend) and which timeout a stream that
waited too long raises (``StreamState._timeout_error``)."""

from __future__ import annotations

import botocore.config
import pytest
from fidelity_support import FAKE_KEYS

import evstream.sagemaker as sm
from evstream.sagemaker.reader import malformed


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest) -> sm.Client:
    make = sm.client if request.param == "sync" else sm.async_client
    standard = botocore.config.Config(retries={"mode": "standard"})
    return make(
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        config=standard,
        backoff_base=0.01,
        **FAKE_KEYS,
    )


def test_a_body_cut_short_is_retried(client: sm.Client) -> None:
    delay = client._retry_delay(1, sm.IncompleteStream("the connection closed mid-body"))
    assert delay is not None and 0 <= delay <= 0.02


def test_a_malformed_answer_is_never_retried(client: sm.Client) -> None:
    error = malformed("Malformed HTTP response head: status line b'HTTP/9'")
    assert error.retryable  # what a call site would have looked at: the veto is the client's
    assert client._retry_delay(1, error) is None


def test_errors_that_say_no_retry_are_not_retried(client: sm.Client) -> None:
    assert client._retry_delay(1, sm.EventTimeout("no event", 1.0)) is None
    assert client._retry_delay(1, ValueError("not ours")) is None


def test_a_wait_too_long_is_a_first_byte_timeout_then_an_event_timeout(client: sm.Client) -> None:
    from evstream.sagemaker._base import SAGEMAKER, StreamState

    client = type(client)(
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        first_byte_timeout=7,
        event_timeout=2,
        **FAKE_KEYS,
    )
    state = StreamState(client, client._prepare({"EndpointName": "x", "Body": b"{}"}), SAGEMAKER)
    state.request_id = "req-1"
    before = state._timeout_error()
    assert isinstance(before, sm.FirstByteTimeout) and before.timeout == 7 and before.request_id == "req-1"
    state._delivered = True
    after = state._timeout_error()
    assert isinstance(after, sm.EventTimeout) and after.timeout == 2 and after.request_id == "req-1"
    assert sm.AsyncEventStream._timeout_error is StreamState._timeout_error  # one definition
