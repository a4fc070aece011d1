"""The server's cyclic garbage collection after start: what start built is frozen, and the
youngest generation is collected at the server's threshold, cycles still freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from broadcaster.deploy.server import YOUNG_COLLECTION_THRESHOLD, freeze_startup_objects


@pytest.fixture
def restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_startup_objects_frozen_and_young_collected_less_often(restored: None) -> None:
    built_at_start = [_Node() for _ in range(100)]
    freeze_startup_objects()
    assert gc.get_freeze_count() >= len(built_at_start)
    young, middle, old = gc.get_threshold()
    assert young == YOUNG_COLLECTION_THRESHOLD
    assert (middle, old) == (10, 10)  # Python's own, unchanged

    first, second = _Node(), _Node()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    del first, second
    gc.collect()
    assert gone() is None  # a cycle made after start is still collected
