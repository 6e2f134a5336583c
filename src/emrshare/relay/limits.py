"""The relay's limits: a token bucket per patient and a cap on requests in flight.

A patient's bucket is charged only for a request the forwarder accepted in an
``eth_call`` (its signature checked): nobody can use up a patient's allowance with
requests they could not sign. The in-flight cap bounds everything else, including the
``eth_call`` work that unsigned garbage costs.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["InFlight", "TokenBuckets"]


class TokenBuckets:
    """One bucket of ``burst`` tokens per key, refilled at ``per_minute`` tokens a
    minute. At most ``max_keys`` buckets are kept (the least recently used go; a
    forgotten bucket is a full one, which only ever favours the patient)."""

    def __init__(
        self,
        per_minute: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0 if there was one, else the seconds until there is
        (nothing taken)."""
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return wait

    def retry_after(self, wait: float) -> int:
        """``wait`` as a ``Retry-After`` value (whole seconds, at least 1)."""
        return max(1, math.ceil(wait))


class InFlight:
    """At most ``limit`` holders at once; :meth:`slot` yields ``False`` when full."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        return self._held

    @contextmanager
    def slot(self) -> Iterator[bool]:
        with self._lock:
            got = self._held < self.limit
            if got:
                self._held += 1
        try:
            yield got
        finally:
            if got:
                with self._lock:
                    self._held -= 1
