"""How a node's refusal of ``eth_sendRawTransaction`` is read: the one place it is."""

from __future__ import annotations

import pytest

from emrshare.chain._rpc import refusal


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("already known", "known"),  # geth: this transaction is pooled
        ("Known transaction", "known"),  # Besu
        ("AlreadyKnown", "known"),  # Nethermind
        ("nonce too low", "nonce"),  # geth, anvil
        ("Nonce too low: next nonce 7, tx nonce 5", "nonce"),
        ("the tx doesn't have the correct nonce. account has nonce of: 3", "nonce"),  # ganache
        ("OldNonce", "nonce"),  # Nethermind
        ("nonce already used", "nonce"),  # not "already known": a used nonce
        ("nonce has already been used", "nonce"),
        ("intrinsic gas too low", "refused"),
        ("insufficient funds for gas * price + value", "refused"),
        ("unknown transaction type", "refused"),
    ],
)
def test_refusals_are_read_by_their_cause(message: str, kind: str) -> None:
    assert refusal({"code": -32000, "message": message}) == kind
    assert refusal(message) == kind
