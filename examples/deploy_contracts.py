"""Start a real anvil node, deploy every emrshare contract, print the addresses, stop anvil.

python examples/deploy_contracts.py
"""

from __future__ import annotations

import sys

from web3 import Web3

from emrshare.chain.deploy import deploy_contracts
from emrshare.devnet import dev_private_keys, running_node


def main() -> int:
    with running_node("anvil") as node:
        print(f"anvil {node.rpc_url} (chain {node.chain_id}) started")
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        dep = deploy_contracts(
            w3, dev_private_keys(1)[0], on_deployed=lambda n, a: print(f"  deployed {n:<24} {a}")
        )
        dep.check(w3)
        print(
            f"{len(dep.addresses)} contracts deployed from block {dep.start_block}; stopping anvil"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
