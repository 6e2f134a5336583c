"""Deploy the emrshare contracts and read/write the deployment file."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.types import Nonce, RPCEndpoint

from emrshare._files import private_dir, read_json_object, write_atomically
from emrshare.chain._rpc import node_errors
from emrshare.chain.artifacts import artifact_names, load_artifact
from emrshare.errors import (
    ConfigurationError,
    DeploymentError,
    LocalStateError,
    TransactionFailed,
)

__all__ = [
    "ARTIFACTS_DIR",
    "DEPLOY_ORDER",
    "FORMAT_VERSION",
    "ContractDeployment",
    "Deployment",
    "deploy_contracts",
    "write_broadcast",
]

#: Contracts in dependency order: each one's constructor may name those before it.
DEPLOY_ORDER = (
    "PatientForwarder",
    "ConsortiumRegistry",
    "PatientProfiles",
    "RecordIndex",
    "Grants",
    "AuditLog",
    "Prescriptions",
    "Emergency",
    "Studies",
    "Claims",
    "DrugTrace",
)

#: Default cool-down between two emergency declarations by one clinician, in seconds.
EMERGENCY_COOLDOWN = 3600


#: The deployment file's format. 1: chain id, addresses, start block, deployer (no
#: ``version`` key). 2 adds ``contracts``: per contract its deployment transaction, block,
#: runtime code hash, ABI (inline) and artifact (package-relative path).
FORMAT_VERSION = 2
#: Where a deployment's artifacts live, relative to the installed ``emrshare`` package.
ARTIFACTS_DIR = "emrshare/contracts"
#: Foundry's broadcast layout beside the deployment file: ``broadcast/<script>/<chain id>/``.
BROADCAST_SCRIPT = "deploy_contracts"


@dataclass(frozen=True, slots=True)
class ContractDeployment:
    """How one contract was deployed: its creation transaction, the block that mined it,
    and the keccak-256 of the runtime code it left (``0x`` hex)."""

    transaction_hash: str
    block_number: int
    code_hash: str


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where the contracts live: chain id, addresses by contract name, start block; and,
    for a deployment this release made (``contracts``), each one's transaction, block and
    code hash."""

    chain_id: int
    addresses: dict[str, str]
    start_block: int
    deployer: str
    contracts: dict[str, ContractDeployment] = field(default_factory=dict)

    def to_json(self, *, abis: bool = False) -> dict[str, Any]:
        """The deployment file's JSON object; with ``abis``, each contract's ABI inline."""
        contracts: dict[str, Any] = {}
        for name, address in sorted(self.addresses.items()):
            entry: dict[str, Any] = {"address": address, "artifact": f"{ARTIFACTS_DIR}/{name}.json"}
            if name in self.contracts:
                entry.update(asdict(self.contracts[name]))
            if abis:
                with contextlib.suppress(DeploymentError):  # a contract of another release
                    entry["abi"] = load_artifact(name).abi
            contracts[name] = entry
        return {
            "version": FORMAT_VERSION,
            "chain_id": self.chain_id,
            "addresses": dict(sorted(self.addresses.items())),
            "start_block": self.start_block,
            "deployer": self.deployer,
            "artifacts": ARTIFACTS_DIR,
            "contracts": contracts,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        """The deployment a :meth:`to_json` object (format 1 or 2) describes; ``KeyError``,
        ``TypeError`` or ``ValueError`` if it is not one."""
        version = int(data.get("version", 1))
        if version > FORMAT_VERSION:
            raise ValueError(
                f"format {version} is newer than this emrshare reads ({FORMAT_VERSION}); "
                "upgrade emrshare"
            )
        contracts = {}
        for name, entry in dict(data.get("contracts") or {}).items():
            if "transaction_hash" in entry:
                contracts[str(name)] = ContractDeployment(
                    transaction_hash=str(entry["transaction_hash"]),
                    block_number=int(entry["block_number"]),
                    code_hash=str(entry["code_hash"]),
                )
        return cls(
            chain_id=int(data["chain_id"]),
            addresses=dict(data["addresses"]),
            start_block=int(data["start_block"]),
            deployer=str(data["deployer"]),
            contracts=contracts,
        )

    def write(self, path: Path) -> None:
        """Write the deployment file atomically, ABIs inline; :class:`ConfigurationError`
        if it cannot be written."""
        try:
            private_dir(path.parent)
            text = json.dumps(self.to_json(abis=True), indent=2, sort_keys=True) + "\n"
            write_atomically(path, text)
        except (OSError, LocalStateError) as exc:
            raise ConfigurationError(
                f"cannot write the deployment file {path} "
                f"({getattr(exc, 'strerror', None) or exc}); check the directory's permissions"
            ) from exc

    @classmethod
    def read(cls, path: Path) -> Deployment:
        """Read a deployment file written by :meth:`write` (of this release or an earlier
        one)."""
        try:
            return cls.from_json(read_json_object(path, "deployment file"))
        except FileNotFoundError as exc:
            raise ConfigurationError(
                f"no deployment file at {path}; deploy the contracts first "
                "(deploy_contracts, or start a devnet) and write the deployment there"
            ) from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
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
        """Raise :class:`DeploymentError` unless the chain matches this deployment: the
        node's chain id, code at every address, and (for a deployment that recorded it)
        the runtime code each deployment transaction left there."""
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
            known = self.contracts.get(name)
            if known is not None and Web3.keccak(bytes(codes[addr])).to_0x_hex() != known.code_hash:
                raise DeploymentError(
                    f"the code at {addr} is not the {name} this deployment made (code hash "
                    f"differs); point at the right endpoint or redeploy the contracts"
                )


def _constructor_args(
    name: str,
    addresses: dict[str, str],
    admins: Sequence[str],
    admin_threshold: int,
    rx_review_required: bool,
    emergency: tuple[int, bool],
) -> list[Any]:
    def need(dep: str) -> str:
        if dep not in addresses:
            raise DeploymentError(f"{name} needs {dep}: deploy {dep} first (or in the same call)")
        return addresses[dep]

    if name == "ConsortiumRegistry":
        return [[Web3.to_checksum_address(a) for a in admins], admin_threshold]
    if name == "PatientProfiles":
        return [need("PatientForwarder")]
    if name == "RecordIndex":
        return [need("ConsortiumRegistry"), need("PatientForwarder")]
    if name == "Grants":
        return [need("ConsortiumRegistry"), need("PatientProfiles"), need("PatientForwarder")]
    if name == "AuditLog":
        return [need("Grants"), need("ConsortiumRegistry")]
    if name == "Prescriptions":
        return [need("ConsortiumRegistry"), rx_review_required]
    if name in ("Studies", "DrugTrace"):
        return [need("ConsortiumRegistry")]
    if name == "Claims":
        return [
            need("ConsortiumRegistry"),
            need("RecordIndex"),
            need("Grants"),
            need("PatientForwarder"),
        ]
    if name == "Emergency":
        return [
            need("ConsortiumRegistry"),
            need("PatientProfiles"),
            need("PatientForwarder"),
            *emergency,
        ]
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
    rx_review_required: bool = False,
    emergency_cooldown: int = EMERGENCY_COOLDOWN,
    emergency_cosign_required: bool = False,
) -> Deployment:
    """Deploy each named contract (all shipped ones by default) from ``private_key``.

    Contracts are deployed in :data:`DEPLOY_ORDER`; constructor arguments are wired up
    from the contracts deployed before (or given in ``existing``). The consortium
    registry starts with ``admins`` (default: the deployer alone) and an M-of-N approval
    threshold of ``admin_threshold``. With ``rx_review_required``, every prescription
    needs a pharmacist's or physician's review on chain before it can be dispensed. The
    Emergency contract gets a cool-down of
    ``emergency_cooldown`` seconds between two declarations of one clinician and requires
    a second clinician's co-signature if ``emergency_cosign_required``; its consortium
    emergency keys are published afterwards, once, by the deployer
    (``Emergency.set_emergency_keys``).
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
    made: dict[str, ContractDeployment] = {}
    with node_errors("reading the deployer's nonce"):
        nonce = int(w3.eth.get_transaction_count(acct.address, "pending"))
    for name in order:
        art = load_artifact(name)
        args = _constructor_args(
            name,
            addresses,
            admins or [acct.address],
            admin_threshold,
            rx_review_required,
            (emergency_cooldown, emergency_cosign_required),
        )
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
        with node_errors(f"reading {name}'s code"):
            code = bytes(w3.eth.get_code(receipt["contractAddress"]))
        made[name] = ContractDeployment(
            transaction_hash=Web3.to_hex(tx_hash),
            block_number=int(receipt["blockNumber"]),
            code_hash=Web3.keccak(code).to_0x_hex(),
        )
        nonce += 1
        if on_deployed:
            on_deployed(name, addresses[name])
    return Deployment(
        chain_id=chain_id,
        addresses=deployed,
        start_block=start,
        deployer=acct.address,
        contracts=made,
    )


def write_broadcast(deployment: Deployment, w3: Web3, directory: Path) -> Path:
    """Write the deployment's transactions in Foundry's broadcast format,
    ``directory/broadcast/deploy_contracts/<chain id>/run-latest.json``, for tools that read
    forge script output; returns the path.

    Each contract deployed with a recorded transaction becomes a ``CREATE`` entry of
    ``transactions`` (``hash``, ``transactionType``, ``contractName``, ``contractAddress``,
    ``transaction``: from, gas, value, input, nonce, chainId) and its receipt, as the node
    returns it, an entry of ``receipts``; ``arguments`` is ``null`` (the constructor
    arguments are in the input). Both are fetched from ``w3`` by hash."""
    names = sorted(deployment.contracts, key=lambda n: (deployment.contracts[n].block_number, n))
    transactions: list[dict[str, Any]] = []
    receipts: list[dict[str, Any]] = []
    for name in names:
        tx_hash = deployment.contracts[name].transaction_hash
        tx = _raw(w3, "eth_getTransactionByHash", tx_hash)
        receipt = _raw(w3, "eth_getTransactionReceipt", tx_hash)
        transactions.append(
            {
                "hash": tx_hash,
                "transactionType": "CREATE",
                "contractName": name,
                "contractAddress": deployment.addresses[name],
                "function": None,
                "arguments": None,
                "transaction": {
                    k: tx.get(k) for k in ("from", "gas", "value", "input", "nonce", "chainId")
                },
                "additionalContracts": [],
                "isFixedGasLimit": False,
            }
        )
        receipts.append(receipt)
    path = directory / "broadcast" / BROADCAST_SCRIPT / str(deployment.chain_id) / "run-latest.json"
    with node_errors("reading the chain head"):
        head = w3.eth.get_block("latest")
    doc = {
        "transactions": transactions,
        "receipts": receipts,
        "libraries": [],
        "pending": [],
        "returns": {},
        "timestamp": int(head["timestamp"]),
        "chain": deployment.chain_id,
    }
    try:
        private_dir(path.parent)
        write_atomically(path, json.dumps(doc, indent=2) + "\n")
    except (OSError, LocalStateError) as exc:
        raise ConfigurationError(
            f"cannot write the broadcast file {path} ({getattr(exc, 'strerror', None) or exc}); "
            "check the directory's permissions"
        ) from exc
    return path


def _raw(w3: Web3, method: str, tx_hash: str) -> dict[str, Any]:
    """One JSON-RPC result as the node sent it (Foundry keeps the node's own encoding)."""
    with node_errors(f"{method} {tx_hash}"):
        reply = w3.provider.make_request(RPCEndpoint(method), [tx_hash])
    result = reply.get("result")
    if not isinstance(result, dict):
        raise DeploymentError(
            f"the node has no transaction {tx_hash} ({reply.get('error') or 'not found'}); "
            "write the broadcast file on the chain the deployment was made on"
        )
    return dict(result)
