"""The devnet's own state files (``devnet/pids.json``, ``devnet/settings.json``), checked on
read: a damaged one is a :class:`~emrshare.errors.LocalStateError`, never silently
replaced (``devnet up`` used to overwrite a garbage ``pids.json`` and so forget which
processes it had started); and which chain node a devnet's state belongs to."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from emrshare._files import damaged, read_json_object
from emrshare.errors import ConfigurationError

if TYPE_CHECKING:
    from emrshare.devnet.devnode import NodeKind

__all__ = [
    "NODES",
    "node_to_start",
    "read_node",
    "read_pids",
    "read_settings",
    "recorded_node",
]

#: Per chain node: its chain id and where its state persists in the devnet dir (anvil
#: dumps a JSON file, with historical states, every 2 s and on exit; ganache keeps a
#: LevelDB directory). Both answer calls at blocks mined before a restart.
NODES: dict[str, tuple[int, str]] = {
    "anvil": (31337, "anvil-state.json"),
    "ganache": (1337, "ganache-db"),
}


def read_pids(path: Path) -> dict[str, dict[str, object]]:
    """``name → {"pid": int, "url": str}`` from ``pids.json`` (``{}`` if there is none)."""
    try:
        data = read_json_object(path, "devnet process list")
    except FileNotFoundError:
        return {}
    for name, info in data.items():
        if not (
            isinstance(info, dict)
            and _port_like(info.get("pid"), 1, 2**22)
            and isinstance(info.get("url"), str)
        ):
            raise damaged(path, "devnet process list", f"the entry {name!r} is not {{pid, url}}")
    return data


def read_settings(path: Path) -> tuple[int | None, list[int], list[int]]:
    """``(chain port, proxy ports, ipfs ports)`` from ``settings.json``
    (``(None, [], [])`` if there is none)."""
    try:
        data = read_json_object(path, "devnet settings")
    except FileNotFoundError:
        return None, [], []
    port = data.get("port")
    if not (port is None or _port_like(port, 1, 65535)):
        raise damaged(path, "devnet settings", "'port' is not a TCP port")
    lists = []
    for key in ("proxy_ports", "ipfs_ports"):
        ports = data.get(key, [])
        if not isinstance(ports, list) or not all(_port_like(p, 1, 65535) for p in ports):
            raise damaged(path, "devnet settings", f"{key!r} is not a list of TCP ports")
        lists.append(list(ports))
    return port, lists[0], lists[1]


def read_node(path: Path) -> str | None:
    """The chain node (``"anvil"`` or ``"ganache"``) ``settings.json`` records, ``None`` if
    it records none (no file, or one written before the devnet offered ganache: anvil)."""
    try:
        data = read_json_object(path, "devnet settings")
    except FileNotFoundError:
        return None
    node = data.get("node")
    if node not in (None, "anvil", "ganache"):
        raise damaged(path, "devnet settings", "'node' is neither 'anvil' nor 'ganache'")
    return None if node is None else str(node)


def node_to_start(dev: Path, wanted: NodeKind | None) -> NodeKind:
    """The chain node to start: ``wanted``, else the one the state was made with (anvil
    for a new devnet). A devnet whose chain state is another node's is refused: neither
    node reads the other's state, and starting afresh would orphan every profile's
    on-chain registration."""
    recorded = recorded_node(dev)
    if wanted is None:
        return "ganache" if recorded == "ganache" else "anvil"
    if recorded is not None and recorded != wanted and (dev / NODES[recorded][1]).exists():
        raise ConfigurationError(
            f"this devnet's chain state is {recorded}'s ({dev / NODES[recorded][1]}); start "
            f"it with node {recorded}, or take it down with --wipe to switch to {wanted}"
        )
    return wanted


def recorded_node(dev: Path) -> str | None:
    """The node ``settings.json`` names; anvil for state from before ganache was offered."""
    recorded = read_node(dev / "settings.json")
    if recorded is None and (dev / NODES["anvil"][1]).exists():
        return "anvil"
    return recorded


def _port_like(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
