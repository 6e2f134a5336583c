"""The checks of an emergency opt-in before any kfrag is made (issue 15): which
(category, epoch) pairs it opens, and the Emergency contract's bounds on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from emrshare.categories import normalize_category
from emrshare.errors import InvalidInput

__all__ = ["OptInLimits", "check_opt_in", "opt_in_epochs"]


def opt_in_epochs(categories: Sequence[str], epochs: Mapping[str, int]) -> list[tuple[str, int]]:
    """The (category, epoch) pairs an opt-in of ``categories`` opens: every epoch each
    category has had and the next one, so one later move to a new epoch (a revocation)
    stays covered and a reader can tell when the patient went past it."""
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for name in categories:
        category = normalize_category(name, known=epochs)
        if category not in seen:
            seen.add(category)
            out += [(category, e) for e in range(epochs.get(category, 0) + 2)]
    return out


@dataclass(frozen=True, slots=True)
class OptInLimits:
    """The Emergency contract's bounds on one opt-in (``MAX_TAGS``, ``MAX_PROXIES``,
    ``MAX_WINDOW``)."""

    max_tags: int = 64
    max_proxies: int = 32
    max_window: int = 7 * 24 * 3600


def check_opt_in(
    pairs: Sequence[tuple[str, int]],
    window: timedelta,
    proxies: int,
    threshold: int,
    limits: OptInLimits,
) -> int:
    """Check an opt-in against the contract's bounds before any kfrag is made; returns
    the window in seconds. :class:`InvalidInput` saying what to do otherwise."""
    seconds = window.total_seconds()
    if seconds != int(seconds) or not 1 <= seconds <= limits.max_window:
        raise InvalidInput(
            f"an emergency window of {window} is out of range; choose whole seconds from "
            f"1 s to {timedelta(seconds=limits.max_window)} (for example 24 hours)"
        )
    if not pairs:
        raise InvalidInput("name at least one category to open in an emergency")
    if len(pairs) > limits.max_tags:
        names = sorted({c for c, _ in pairs})
        raise InvalidInput(
            f"{len(names)} categories and their epochs take {len(pairs)} tags, more than "
            f"the {limits.max_tags} one opt-in holds (each category takes one tag per epoch "
            "it has had, and one more); opt in to fewer categories"
        )
    if proxies == 0:
        raise InvalidInput(
            "the consortium has no active proxy to hold the emergency kfrags; ask the "
            "admins to admit one"
        )
    if proxies > limits.max_proxies:
        raise InvalidInput(
            f"{proxies} active proxies, more than the {limits.max_proxies} one opt-in may "
            "name; ask the admins (this needs a choice of proxies)"
        )
    if not 1 <= threshold <= proxies:
        raise InvalidInput(
            f"threshold {threshold} is out of range for {proxies} proxies; choose 1 to "
            f"{proxies} (default: a majority, {proxies // 2 + 1})"
        )
    return int(seconds)
