"""Development networks: everything an integrator or a test needs to run emrshare locally.

- :class:`LocalNetwork` — a whole network in this process (py-evm chain, ``LocalStore``,
  in-process proxies), for notebooks, examples and tests: ``LocalNetwork.start(path)``.
- :func:`devnet_up` / :func:`devnet_down` / :func:`devnet_status` — a network of real
  processes (anvil, proxies, optionally js-ipfs) that outlives the command that started it
  (``emrshare devnet``).
- :class:`DevNode` / :func:`running_node` — one anvil or ganache node;
  :class:`IpfsDaemon` / :func:`running_daemon` — one offline js-ipfs daemon.

It sits above the roles (it admits members through their facades) and below the CLI.

**Warning:** development only. The accounts are the well-known development keys.
"""

from emrshare.devnet.devnode import (
    DEV_MNEMONIC,
    DevNode,
    NodeKind,
    dev_private_keys,
    dev_secrets,
    running_node,
)
from emrshare.devnet.ipfsd import JSIPFS_VERSION, IpfsDaemon, daemon_answers, running_daemon
from emrshare.devnet.local import LocalNetwork
from emrshare.devnet.up import (
    DEMO_PROFILES,
    DEVNET_PASSWORD,
    DevnetStatus,
    ProcessStatus,
    devnet_down,
    devnet_status,
    devnet_up,
    fund_account,
)

__all__ = [
    "DEMO_PROFILES",
    "DEVNET_PASSWORD",
    "DEV_MNEMONIC",
    "JSIPFS_VERSION",
    "DevNode",
    "DevnetStatus",
    "IpfsDaemon",
    "LocalNetwork",
    "NodeKind",
    "ProcessStatus",
    "daemon_answers",
    "dev_private_keys",
    "dev_secrets",
    "devnet_down",
    "devnet_status",
    "devnet_up",
    "fund_account",
    "running_daemon",
    "running_node",
]
