"""The suite ``trickle`` of ``python -m evstream bench`` as cases: per workload and loop, evstream, its peer
and the floor, each with an answer check that holds (tiny sizes: the numbers are not looked at)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("awscrt", reason="the client needs the client extra (awscrt has no wheel here)")
from evstream.bench.cases import MODES, cleanup
from evstream.bench.measure import Case
from evstream.bench.peers import Skip
from evstream.bench.trickle import floor_ran, trickle_plan, trickle_sets


@pytest.fixture(scope="module")
def tiny() -> Iterator[tuple[list[list[Case]], list[Skip]]]:
    try:
        yield trickle_sets(MODES["tiny"])
    finally:
        assert cleanup() == []


def test_one_set_per_planned_workload(tiny: tuple[list[list[Case]], list[Skip]]) -> None:
    sets, skips = tiny
    assert not [s for s in skips if s.impl == "all"], skips
    assert len(sets) == len(trickle_plan("tiny")) == 2
    sync_set, asyncio_set = sets  # the sync set first, in the smaller process
    assert {c.key for c in asyncio_set} == {"trickle/asyncio/8x20/10ms"}
    assert {c.key for c in sync_set} == {"trickle/sync/1x20/2.5ms"}
    assert asyncio_set[0].label.endswith("(client CPU; floor: a bare asyncio.Protocol feeding a queue)")
    assert sync_set[0].label.endswith("(client CPU; floor: a blocking recv loop)")


def test_evstream_first_floor_last_every_answer_right(tiny: tuple[list[list[Case]], list[Skip]]) -> None:
    sets, skips = tiny
    for cases, primary in zip(sets, ("evstream client", "evstream asyncio")):
        names = [c.impl.name for c in cases]
        assert names[0] == primary and names[-1] == "floor", names
        assert [c.impl.primary for c in cases] == [True] + [False] * (len(cases) - 1)
        assert [c.impl.evstream for c in cases] == [True] + [False] * (len(cases) - 1)
        skipped = {s.impl for s in skips}
        assert set(names) | skipped >= {primary, "floor"}
        for case in cases:
            assert case.group == "trickle" and case.cpu
            assert case.nmessages == 20 * (8 if primary == "evstream asyncio" else 1)
            assert case.check(), case.impl.name


def test_a_floor_that_breaks_is_not_right() -> None:
    def cut_short() -> bytes:
        raise ConnectionError("the endpoint closed the connection inside a response")

    with pytest.raises(ConnectionError):
        floor_ran(cut_short)
    assert floor_ran(lambda: b"1234")
