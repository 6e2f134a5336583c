"""The latest block as requests see it: one shared read for every request waiting.

Every request is judged at the latest block, read *after* the request arrived: a
revocation mined in block N+1 is enforced for every request that arrives once the node has
N+1. One read per request made the head the largest fixed cost of a one-record read;
:class:`HeadReader` keeps the guarantee and shares the reads. A request that arrives while
a read is in flight does not take that read's answer (it may have started before a
revocation was mined): it waits for the next read, which starts after it arrived and is
shared by every request that queued meanwhile (a combining read, as a database's group
commit). Under load that is one ``eth_getBlockByNumber`` per round trip for any number of
requests; alone, a request pays exactly one read, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["Head", "HeadReader"]


class Head(NamedTuple):
    """The block a request is judged at: its number, chain time (unix seconds) and hash.

    Per-block answers are keyed by ``(number, hash)`` (:attr:`key`): after a reorg the
    new block ``number`` has another hash, so nothing learnt at the orphaned one is reused.
    """

    number: int
    time: int
    hash: bytes

    @property
    def key(self) -> tuple[int, bytes]:
        return (self.number, self.hash)


class HeadReader:
    """Linearizable shared reads of the latest block over ``read`` (blocking)."""

    def __init__(self, read: Callable[[], tuple[int, int, bytes]]) -> None:
        self._read = read
        self._cv = threading.Condition()
        self._started = 0  # reads started so far (the n-th read is read number n)
        self._done = 0  # the number of the newest finished read
        self._reading = False
        self._last: Head | BaseException | None = None
        #: Reads made, and requests answered (for the benchmark and the tests).
        self.reads = 0
        self.answered = 0

    def latest(self) -> Head:
        """The latest block from a read that started after this call; raises what the
        read raised (a :class:`~emrshare.errors.ChainError` from the node)."""
        with self._cv:
            # The read in flight (if any) started before we arrived: we need the next.
            wanted = self._started + 1
            while self._done < wanted:
                if self._reading:
                    self._cv.wait()
                    continue
                self._reading = True
                self._started += 1
                mine = self._started
                self._cv.release()
                result: Head | BaseException
                try:
                    result = Head(*self._read())
                except BaseException as exc:  # handed to every request of this read
                    result = exc
                finally:
                    self._cv.acquire()
                self._reading = False
                self._done = mine
                self._last = result
                self.reads += 1
                self._cv.notify_all()
            last = self._last
            self.answered += 1
        if isinstance(last, BaseException):
            raise last
        assert last is not None  # a read finished
        return last
