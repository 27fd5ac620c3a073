"""What the endpoint keeps between requests, bounded: the recorded requests and the retry bookkeeping."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
from collections.abc import Iterator

__all__ = ["AttemptCounter", "RecordedRequest", "RequestLog"]


@dataclasses.dataclass
class RecordedRequest:
    """A request as the endpoint saw it (kept for tests and for ``serve --log``)."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    signature_valid: bool | None = None
    events: int = 0  # event-stream frames sent in the answer

    @property
    def size(self) -> int:
        """Bytes this record holds (what the log's byte budget counts)."""
        return len(self.body) + len(self.path) + sum(len(k) + len(v) for k, v in self.headers.items())


class RequestLog:
    """The last requests, at most ``maxlen`` of them and at most ``max_bytes`` in total.

    The newest request is always kept, even alone over the budget, so a test can look at it.
    """

    def __init__(self, maxlen: int = 1000, max_bytes: int = 64 * 1024 * 1024) -> None:
        if maxlen < 1 or max_bytes < 0:
            raise ValueError("maxlen must be >= 1 and max_bytes >= 0")
        self.maxlen = maxlen
        self.max_bytes = max_bytes
        self._items: collections.deque[RecordedRequest] = collections.deque()
        self.bytes = 0

    def append(self, request: RecordedRequest) -> None:
        self._items.append(request)
        self.bytes += request.size
        while len(self._items) > 1 and (len(self._items) > self.maxlen or self.bytes > self.max_bytes):
            self.bytes -= self._items.popleft().size

    def __getitem__(self, index: int) -> RecordedRequest:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self._items)

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0


class AttemptCounter:
    """How many times each request body was seen, for the ``fault_times`` retry faults.

    Keyed by the body's SHA-256 (not the body) and least-recently-used first out, so memory stays
    bounded whatever clients send.
    """

    def __init__(self, maxlen: int = 4096) -> None:
        self.maxlen = maxlen
        self._counts: collections.OrderedDict[bytes, int] = collections.OrderedDict()

    def count(self, body: bytes) -> int:
        """Record one more attempt with this body; returns how many there have been."""
        key = hashlib.sha256(body).digest()
        n = self._counts.pop(key, 0) + 1
        self._counts[key] = n
        if len(self._counts) > self.maxlen:
            self._counts.popitem(last=False)
        return n

    def __len__(self) -> int:
        return len(self._counts)
