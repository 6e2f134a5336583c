"""The per-request shortcuts sign and recover exactly what the plain functions do."""

from __future__ import annotations

import secrets

from eth_account import Account

from emrshare.proxy._envelope import recover_signer
from emrshare.proxy.request import ReencryptRequest
from emrshare.proxy.response import DigestSigner, recover_response, sign_digest


def test_digest_signer_signs_as_sign_digest() -> None:
    for _ in range(50):
        key, digest = secrets.token_bytes(32), secrets.token_bytes(32)
        signature = DigestSigner(key).sign(digest)
        assert signature == sign_digest(digest, key)
        assert recover_response(digest, signature) == Account.from_key(key).address
    assert "key hidden" in repr(DigestSigner(secrets.token_bytes(32)))


def test_recover_signer_from_the_digest_is_recover() -> None:
    account = Account.create()
    contract = Account.create().address
    req = ReencryptRequest.new(contract, secrets.token_bytes(32), [secrets.token_bytes(32)], 99)
    signature = req.sign(bytes(account.key), 31337, contract)
    digest = req.digest(31337, contract)
    assert recover_signer(digest, signature) == req.recover(signature, 31337, contract)
    assert recover_signer(digest, signature) == account.address
