"""The opt-in facade checks the Emergency contract's bounds before it makes a kfrag: a
bad window, too many category epochs, no or too many proxies, or a threshold out of
range is an InvalidInput saying what to do, never a revert after seconds of crypto."""

from __future__ import annotations

from datetime import timedelta

import pytest

from emrshare.errors import InvalidInput
from emrshare.roles._emergency_optin import OptInLimits, check_opt_in, opt_in_epochs

LIMITS = OptInLimits()
DAY = timedelta(days=1)


def test_every_epoch_and_the_next_of_each_category_once() -> None:
    pairs = opt_in_epochs(["allergies", "Allergies", "medications"], {"allergies": 2})
    assert pairs == [
        ("allergies", 0),
        ("allergies", 1),
        ("allergies", 2),
        ("allergies", 3),
        ("medications", 0),
        ("medications", 1),
    ]


def test_a_good_opt_in_passes_and_gives_the_window_in_seconds() -> None:
    pairs = opt_in_epochs(["allergies"], {})
    assert check_opt_in(pairs, DAY, 3, 2, LIMITS) == 86400
    assert check_opt_in(pairs, timedelta(days=7), 32, 1, LIMITS) == 7 * 86400


@pytest.mark.parametrize(
    ("window", "says"),
    [
        (timedelta(0), "out of range"),
        (timedelta(days=7, seconds=1), "7 days"),
        (timedelta(seconds=-5), "for example 24 hours"),
        (timedelta(milliseconds=1500), "whole seconds"),
    ],
)
def test_a_window_out_of_bounds_is_refused_before_anything_is_sent(
    window: timedelta, says: str
) -> None:
    with pytest.raises(InvalidInput, match=says):
        check_opt_in(opt_in_epochs(["allergies"], {}), window, 3, 2, LIMITS)


def test_more_category_epochs_than_one_opt_in_holds_is_refused() -> None:
    epochs = {"allergies": 40, "medications": 30}
    pairs = opt_in_epochs(["allergies", "medications"], epochs)
    assert len(pairs) == 74  # 0..41 and 0..31
    with pytest.raises(InvalidInput, match=r"74 tags, more than the 64.*fewer categories"):
        check_opt_in(pairs, DAY, 3, 2, LIMITS)
    with pytest.raises(InvalidInput, match="at least one category"):
        check_opt_in([], DAY, 3, 2, LIMITS)


@pytest.mark.parametrize(
    ("proxies", "threshold", "says"),
    [
        (0, 1, "no active proxy"),
        (33, 17, "more than the 32"),
        (3, 0, "choose 1 to 3"),
        (3, 4, "threshold 4 is out of range for 3 proxies"),
    ],
)
def test_proxies_and_threshold_out_of_bounds_are_refused(
    proxies: int, threshold: int, says: str
) -> None:
    with pytest.raises(InvalidInput, match=says):
        check_opt_in(opt_in_epochs(["allergies"], {}), DAY, proxies, threshold, LIMITS)
