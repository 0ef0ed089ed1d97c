"""An iterator run ahead of its consumer in a background thread: the next items are made while these are used.

The pipeline's Face2Vid (torch) makes the next frames while the main thread composes the current ones
(OpenCV, numpy) and hands them to the encoder (a pipe to ffmpeg). Each releases the GIL in its heavy part,
so on two cores the stages run side by side instead of in turn, and the output is the same.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["ahead"]

T = TypeVar("T")
_DONE = object()


def ahead(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """The items of ``items`` in order, made in a background thread up to ``depth`` items ahead.

    An exception raised while making an item is raised here, where that item would have come. Closing the
    returned generator (or leaving it on an exception) stops the thread after the item it is making.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[object, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as error:  # handed over, raised in the consumer's thread
            put((_DONE, error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=work, name="talking-face-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()
