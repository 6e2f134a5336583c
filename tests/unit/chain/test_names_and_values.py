"""One name, one meaning; one status type; the node refusals the client tells apart."""

from __future__ import annotations

import pytest

import emrshare.errors
from emrshare.chain import ChainEvent, GrantRevokedEvent, GrantStatus, SignedTransaction, events
from emrshare.chain._rpc import refusal
from emrshare.errors import ChainError


def _event_classes() -> list[type[ChainEvent]]:
    return [
        v
        for v in vars(events).values()
        if isinstance(v, type) and issubclass(v, ChainEvent) and v is not ChainEvent
    ]


def test_no_event_shares_its_name_with_an_exception() -> None:
    errors = set(emrshare.errors.__all__)
    clashing = [cls.__name__ for cls in _event_classes() if cls.__name__ in errors]
    assert clashing == []
    assert GrantRevokedEvent.ABI_NAME == "GrantRevoked"
    # Every other event is named after its ABI event.
    renamed = {cls.__name__ for cls in _event_classes() if cls.__name__ != cls.ABI_NAME}
    assert renamed == {"GrantRevokedEvent"}


def test_grant_status_is_a_string_and_reads_the_contract_code() -> None:
    assert GrantStatus.from_code(1) == "active" and GrantStatus.from_code(1) is GrantStatus.ACTIVE
    assert [GrantStatus.from_code(c) for c in range(5)] == list(GrantStatus)
    assert all(GrantStatus.from_code(s.code) is s for s in GrantStatus)
    assert GrantStatus.TAG_REVOKED.name.lower() == GrantStatus.TAG_REVOKED
    with pytest.raises(ChainError, match="statusOf answered 9"):
        GrantStatus.from_code(9)


def test_signed_transaction_repr_is_short() -> None:
    tx = SignedTransaction(raw=b"\x02" + b"\xab" * 200, tx_hash=b"\x01" * 32, nonce=7)
    assert "abab" not in repr(tx) and "nonce=7" in repr(tx) and "0x0101" in repr(tx)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("already known", "known"),
        ("known transaction: 0x12", "known"),
        ("transaction already imported", "known"),
        ("nonce too low: next nonce 5, tx nonce 3", "nonce"),
        (
            "the tx doesn't have the correct nonce. account has nonce of: 5 tx has nonce of: 3",
            "nonce",
        ),
        ("intrinsic gas too low", "refused"),
        ("unknown transaction type", "refused"),
        ("transaction underpriced", "refused"),
    ],
)
def test_node_refusals_are_told_apart(message: str, kind: str) -> None:
    assert refusal({"code": -32000, "message": message}) == kind
