"""Running an iterator ahead in a background thread (talking_face/generation/ahead.py)."""

from __future__ import annotations

import threading

import pytest

from talking_face.generation.ahead import ahead


def test_items_come_in_order_and_all_of_them():
    assert list(ahead(iter(range(100)), depth=3)) == list(range(100))
    assert list(ahead([])) == []


def test_an_error_while_making_an_item_is_raised_where_that_item_would_come():
    def items():
        yield 1
        yield 2
        raise KeyError("made badly")

    got = []
    with pytest.raises(KeyError, match="made badly"):
        for item in ahead(items()):
            got.append(item)
    assert got == [1, 2]


def test_closing_early_stops_the_thread_and_closes_the_items():
    closed = threading.Event()

    def items():
        try:
            yield from range(10**9)
        finally:
            closed.set()

    made = ahead(items(), depth=2)
    assert [next(made) for _ in range(3)] == [0, 1, 2]
    made.close()
    assert closed.is_set()
    assert not any(thread.name == "talking-face-ahead" for thread in threading.enumerate())


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth"):
        list(ahead([1], depth=0))
