"""Deploy the emrshare contracts and read/write the deployment file."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.types import Nonce

from emrshare._files import private_dir, read_json_object, write_atomically
from emrshare.chain._rpc import node_errors
from emrshare.chain.artifacts import artifact_names, load_artifact
from emrshare.errors import (
    ConfigurationError,
    DeploymentError,
    LocalStateError,
    TransactionFailed,
)

__all__ = ["DEPLOY_ORDER", "Deployment", "deploy_contracts"]

#: Contracts in dependency order: each one's constructor may name those before it.
DEPLOY_ORDER = ("ConsortiumRegistry", "PatientProfiles", "RecordIndex", "Grants", "AuditLog")


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where the contracts live: chain id, addresses by contract name, start block."""

    chain_id: int
    addresses: dict[str, str]
    start_block: int
    deployer: str

    def write(self, path: Path) -> None:
        """Write the deployment file atomically; :class:`ConfigurationError` if it cannot be."""
        try:
            private_dir(path.parent)
            write_atomically(path, json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        except (OSError, LocalStateError) as exc:
            raise ConfigurationError(
                f"cannot write the deployment file {path} "
                f"({getattr(exc, 'strerror', None) or exc}); check the directory's permissions"
            ) from exc

    @classmethod
    def read(cls, path: Path) -> Deployment:
        """Read a deployment file written by :meth:`write`."""
        try:
            data = read_json_object(path, "deployment file")
            return cls(
                chain_id=int(data["chain_id"]),
                addresses=dict(data["addresses"]),
                start_block=int(data["start_block"]),
                deployer=str(data["deployer"]),
            )
        except FileNotFoundError as exc:
            raise ConfigurationError(
                f"no deployment file at {path}; deploy the contracts first "
                "(deploy_contracts, or start a devnet) and write the deployment there"
            ) from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise LocalStateError(
                path,
                f"deployment file {path} is not valid ({exc!r:.80}); restore it from a backup "
                "or move it aside and deploy again",
            ) from exc

    def address_of(self, name: str) -> str:
        """The address of contract ``name``; :class:`DeploymentError` if it was not deployed."""
        try:
            return self.addresses[name]
        except KeyError:
            raise DeploymentError(
                f"the deployment has no {name} contract (it has "
                f"{', '.join(sorted(self.addresses)) or 'none'}); redeploy with it"
            ) from None

    def check(self, w3: Web3) -> None:
        """Raise :class:`DeploymentError` unless the chain matches this deployment."""
        with node_errors("checking the deployment"):
            node_chain = int(w3.eth.chain_id)
            codes = {
                a: w3.eth.get_code(Web3.to_checksum_address(a)) for a in self.addresses.values()
            }
        if node_chain != self.chain_id:
            raise DeploymentError(
                f"deployment is for chain {self.chain_id} but the node is "
                f"chain {node_chain}; point at the right endpoint"
            )
        for name, addr in self.addresses.items():
            if not codes[addr]:
                raise DeploymentError(f"no {name} contract at {addr}; redeploy the contracts")


def _constructor_args(
    name: str, addresses: dict[str, str], admins: Sequence[str], admin_threshold: int
) -> list[Any]:
    def need(dep: str) -> str:
        if dep not in addresses:
            raise DeploymentError(f"{name} needs {dep}: deploy {dep} first (or in the same call)")
        return addresses[dep]

    if name == "ConsortiumRegistry":
        return [[Web3.to_checksum_address(a) for a in admins], admin_threshold]
    if name == "RecordIndex":
        return [need("ConsortiumRegistry")]
    if name == "Grants":
        return [need("ConsortiumRegistry"), need("PatientProfiles")]
    if name == "AuditLog":
        return [need("Grants"), need("ConsortiumRegistry")]
    return []


def deploy_contracts(
    w3: Web3,
    private_key: bytes,
    names: list[str] | None = None,
    on_deployed: Callable[[str, str], None] | None = None,
    *,
    admins: Sequence[str] | None = None,
    admin_threshold: int = 1,
    existing: dict[str, str] | None = None,
) -> Deployment:
    """Deploy each named contract (all shipped ones by default) from ``private_key``.

    Contracts are deployed in :data:`DEPLOY_ORDER`; constructor arguments are wired up
    from the contracts deployed before (or given in ``existing``). The consortium
    registry starts with ``admins`` (default: the deployer alone) and an M-of-N approval
    threshold of ``admin_threshold``.
    """
    acct = Account.from_key(private_key)
    with node_errors("reading the chain head"):
        start = w3.eth.block_number
        chain_id = w3.eth.chain_id
    wanted = list(names or artifact_names())
    order = [n for n in DEPLOY_ORDER if n in wanted] + sorted(
        n for n in wanted if n not in DEPLOY_ORDER
    )
    addresses: dict[str, str] = dict(existing or {})
    deployed: dict[str, str] = {}
    with node_errors("reading the deployer's nonce"):
        nonce = int(w3.eth.get_transaction_count(acct.address, "pending"))
    for name in order:
        art = load_artifact(name)
        args = _constructor_args(name, addresses, admins or [acct.address], admin_threshold)
        with node_errors(f"deploying {name}"):
            contract = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
            tx = contract.constructor(*args).build_transaction(
                {"from": acct.address, "nonce": Nonce(nonce), "chainId": chain_id}
            )
            signed = acct.sign_transaction(tx)
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if receipt["status"] != 1 or not receipt["contractAddress"]:
            raise TransactionFailed(f"deploying {name} failed in tx {tx_hash.hex()}")
        addresses[name] = deployed[name] = str(receipt["contractAddress"])
        nonce += 1
        if on_deployed:
            on_deployed(name, addresses[name])
    return Deployment(
        chain_id=chain_id, addresses=deployed, start_block=start, deployer=acct.address
    )
