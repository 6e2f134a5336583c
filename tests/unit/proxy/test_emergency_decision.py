"""The proxy's judgement of an emergency declaration's time box: conservative, on the
later of the latest block's time and the proxy's own clock (a stale chain head cannot
stretch a declaration past its expiry)."""

from __future__ import annotations

import pytest

from emrshare.chain import EmergencyStatus
from emrshare.proxy.chainview import EmergencyView
from emrshare.proxy.node.emergency import declaration_refusal
from emrshare.proxy.request import RefusalReason

pytestmark = pytest.mark.unit

ENDS_AT = 1_900_000_000
ACTIVE = EmergencyView(EmergencyStatus.ACTIVE, "0xP", "0xC", 1, ENDS_AT)


def test_an_active_declaration_within_its_time_box_on_both_clocks_opens_reads() -> None:
    assert declaration_refusal(ACTIVE, 7, ENDS_AT - 10, ENDS_AT - 5) is None
    assert declaration_refusal(ACTIVE, 7, ENDS_AT - 1, ENDS_AT - 0.5) is None


def test_read_refused_when_wall_clock_passed_the_time_box_though_the_chain_head_did_not() -> None:
    # The chain still says Active (its latest block is an hour old), the clock says over.
    refusal = declaration_refusal(ACTIVE, 7, ENDS_AT - 3600, ENDS_AT)
    assert refusal is not None
    reason, message = refusal
    assert reason is RefusalReason.DECLARATION_EXPIRED
    assert "declaration 7" in message and "clock" in message and str(ENDS_AT - 3600) in message
    assert declaration_refusal(ACTIVE, 7, ENDS_AT - 3600, ENDS_AT + 0.001) is not None


def test_a_chain_time_past_the_time_box_expires_it_whatever_the_proxy_clock_says() -> None:
    # A proxy clock behind the chain is no excuse either: the later of the two decides.
    refusal = declaration_refusal(ACTIVE, 7, ENDS_AT, ENDS_AT - 3600)
    assert refusal is not None and refusal[0] is RefusalReason.DECLARATION_EXPIRED


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (EmergencyStatus.NONE, RefusalReason.DECLARATION_UNKNOWN),
        (EmergencyStatus.EXPIRED, RefusalReason.DECLARATION_EXPIRED),
        (EmergencyStatus.ENDED, RefusalReason.DECLARATION_ENDED),
        (EmergencyStatus.WITHDRAWN, RefusalReason.DECLARATION_WITHDRAWN),
    ],
)
def test_the_chain_status_of_a_declaration_that_is_not_active_is_the_reason(
    status: EmergencyStatus, reason: RefusalReason
) -> None:
    # Within the time box on both clocks: the chain's status alone refuses.
    view = EmergencyView(status, "0xP", "0xC", 1, ENDS_AT)
    refusal = declaration_refusal(view, 7, ENDS_AT - 10, ENDS_AT - 10)
    assert refusal is not None and refusal[0] is reason
