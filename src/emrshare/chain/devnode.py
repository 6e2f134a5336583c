"""Old home of the development-chain launcher, now :mod:`emrshare.devnet.devnode` (the
process helpers are in :mod:`emrshare._process`)."""

# re-export: removed after r11
from emrshare._process import free_port, log_tail, pid_alive, spawn, stop_group
from emrshare.devnet.devnode import (
    DEV_MNEMONIC,
    DevNode,
    NodeKind,
    dev_private_keys,
    dev_secrets,
    running_node,
)

__all__ = [
    "DEV_MNEMONIC",
    "DevNode",
    "NodeKind",
    "dev_private_keys",
    "dev_secrets",
    "free_port",
    "log_tail",
    "pid_alive",
    "running_node",
    "spawn",
    "stop_group",
]
