"""The parts of web3.py the code relies on by name, checked on whichever web3 is installed
(`make test` runs this in the web3 7 venv and again in the web3 8 one, `make test-web3-8`).

A rename here would not fail loudly elsewhere: the proxy drops the ``validation``
middleware under ``contextlib.suppress`` (an extra ``eth_chainId`` round trip per request
if the name changed), and ``NodeConnection`` falls back to one call per request without
``make_batch_request``.
"""

from __future__ import annotations

from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound, Web3RPCError


def test_validation_middleware_is_named_validation() -> None:
    w3 = Web3(Web3.HTTPProvider("http://127.0.0.1:9"))  # never contacted
    assert "validation" in w3.middleware_onion
    w3.middleware_onion.remove("validation")
    assert "validation" not in w3.middleware_onion


def test_http_provider_batches_requests() -> None:
    provider = Web3.HTTPProvider("http://127.0.0.1:9")
    assert callable(provider.make_batch_request)


def test_not_found_errors_are_rpc_errors() -> None:
    # _rpc.py catches these two by type around web3's formatted reads.
    assert issubclass(BlockNotFound, Web3RPCError)
    assert issubclass(TransactionNotFound, Web3RPCError)
