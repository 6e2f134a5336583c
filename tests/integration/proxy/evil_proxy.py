"""A malicious proxy for the tests: a real proxy node whose answers are corrupted.

Usage: ``python evil_proxy.py CONFIG MODE`` with MODE ``garbage`` (random bytes as
cfrags) or ``other-capsule`` (a valid cfrag, made with its real kfrag, for a different
capsule of the same category key).
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import umbral_pre
import uvicorn

from emrshare.proxy import _crypto
from emrshare.proxy.config import ProxyConfig
from emrshare.proxy.node import ProxyNode
from emrshare.proxy.request import Refusal, SignedRequest
from emrshare.proxy.service import ProxyService, Served


class EvilService(ProxyService):
    mode = "garbage"

    def handle(self, signed: SignedRequest) -> Served | Refusal:
        result = super().handle(signed)
        if not isinstance(result, Served):
            return result
        if self.mode == "garbage":
            return Served(tuple(secrets.token_bytes(len(c)) for c in result.cfrags), result.block)
        policy = self.store.policy(bytes(signed.request.policy_id))
        assert policy is not None
        kfrag = self._kfrag(policy)
        assert kfrag is not None
        category_pk = kfrag.binding.category_public_key
        fakes = []
        for _ in result.cfrags:
            capsule, _ct = umbral_pre.encrypt(category_pk, b"something else")
            fakes.append(_crypto.reencrypt(capsule, kfrag))
        return Served(tuple(fakes), result.block)


def main() -> None:
    config = ProxyConfig.load(Path(sys.argv[1]))
    EvilService.mode = sys.argv[2]
    node = ProxyNode.from_config(config)
    node.service.__class__ = EvilService
    uvicorn.run(node.app(), host=config.host, port=config.port, log_level="warning")


if __name__ == "__main__":
    main()
