"""**Test double** (TEST-ONLY, never reachable from production configuration): a real
proxy node whose answers are corrupted, then signed again with that proxy's own key.

Usage: ``python evil_proxy.py CONFIG MODE`` with MODE

- ``garbage``: random bytes as cfrags (signed);
- ``other-capsule``: a valid cfrag, made with its real kfrag, for a different capsule of
  the same category key (signed);
- ``corrupt``: the real cfrag with one byte flipped (signed): a proxy the grantee can
  prove misbehaved;
- ``unsigned``: the real cfrags, with no signature.

It is started by :meth:`tests.integration.proxy.support.ProxyProcess.start` (``evil=``)
from this file only; ``emrshare proxy serve`` has no such option.
"""

from __future__ import annotations

import dataclasses
import secrets
import sys
from pathlib import Path

import umbral_pre
import uvicorn

from emrshare.proxy.node import ProxyConfig, ProxyNode, _kfrags
from emrshare.proxy.node.service import ProxyService, Served
from emrshare.proxy.request import Refusal, SignedRequest


class EvilService(ProxyService):
    mode = "garbage"

    def handle(self, signed: SignedRequest) -> Served | Refusal:
        result = super().handle(signed)
        if not isinstance(result, Served):
            return result
        if self.mode == "unsigned":
            return dataclasses.replace(result, signature=b"")
        if self.mode == "garbage":
            fakes = tuple(secrets.token_bytes(len(c)) for c in result.cfrags)
        elif self.mode == "corrupt":
            fakes = tuple(c[:-1] + bytes([c[-1] ^ 0x01]) for c in result.cfrags)
        else:
            policy = self.store.policy(bytes(signed.request.policy_id))
            assert policy is not None
            kfrag = self.caches.kfrag(policy)
            assert kfrag is not None
            category_pk = kfrag.binding.category_public_key
            other = []
            for _ in result.cfrags:
                capsule, _ct = umbral_pre.encrypt(category_pk, b"something else")
                other.append(_kfrags.reencrypt(capsule, kfrag))
            fakes = tuple(other)
        # Signed again with this proxy's key: the answer is the proxy's word.
        return self.sign(signed, Served(fakes, result.block, result.delegating_pk))


def main() -> None:
    config = ProxyConfig.load(Path(sys.argv[1]))
    EvilService.mode = sys.argv[2]
    node = ProxyNode.from_config(config)
    node.parts.service.__class__ = EvilService
    uvicorn.run(node.app(), host=config.host, port=config.port, log_level="warning")


if __name__ == "__main__":
    main()
