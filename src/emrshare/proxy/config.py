"""The proxy's configuration file (TOML or JSON, same keys).

Example (``proxy.toml``)::

    [proxy]
    listen = "127.0.0.1:7701"
    data_dir = "data"                      # SQLite state; relative to this file
    keystore = "proxy.keystore"            # the member keystore of this proxy
    password_env = "EMRSHARE_PROXY_PASSWORD"

    [chain]
    rpc_url = "http://127.0.0.1:8545"
    deployment = "deployment.json"
    confirmations = 0                      # blocks behind the head the watcher reads
    poll_interval = 0.5                    # seconds between watcher polls
    rpc_timeout = 10.0

    [audit]
    flush_interval = 2.0                   # T: seconds between audit batches
    flush_entries = 64                     # K: flush as soon as this many wait

The password is never in the file: it is read from the environment variable named by
``password_env``.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emrshare.errors import ConfigurationError

__all__ = ["ProxyConfig"]


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Everything a proxy process needs to start. Paths are absolute after :meth:`load`."""

    keystore: Path
    password_env: str
    rpc_url: str
    deployment: Path
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 7701
    confirmations: int = 0
    poll_interval: float = 0.5
    rpc_timeout: float = 10.0
    flush_interval: float = 2.0
    flush_entries: int = 64

    @property
    def database(self) -> Path:
        return self.data_dir / "proxy.sqlite3"

    def password(self) -> str:
        """The keystore password from the environment; never logged."""
        value = os.environ.get(self.password_env)
        if value is None:
            raise ConfigurationError(
                f"the keystore password is read from ${self.password_env}, which is not set; "
                "export it before starting the proxy"
            )
        return value

    @classmethod
    def load(cls, path: Path) -> ProxyConfig:
        """Read a ``.toml`` or ``.json`` config file."""
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigurationError(f"cannot read proxy config {path}: {exc}") from exc
        try:
            data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"proxy config {path} does not parse: {exc}") from exc
        return cls.from_dict(data, base=path.resolve().parent)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Path) -> ProxyConfig:
        """Build from the parsed sections; relative paths are taken from ``base``."""
        proxy = _section(data, "proxy")
        chain = _section(data, "chain")
        audit = data.get("audit", {})
        try:
            host, _, port = str(proxy.get("listen", "127.0.0.1:7701")).rpartition(":")
            host = host.removeprefix("[").removesuffix("]")  # "[::]:7701" → "::"
            return cls(
                keystore=_path(base, proxy["keystore"]),
                password_env=str(proxy.get("password_env", "EMRSHARE_PROXY_PASSWORD")),
                rpc_url=str(chain["rpc_url"]),
                deployment=_path(base, chain["deployment"]),
                data_dir=_path(base, proxy.get("data_dir", "data")),
                host=host or "127.0.0.1",
                port=int(port),
                confirmations=int(chain.get("confirmations", 0)),
                poll_interval=float(chain.get("poll_interval", 0.5)),
                rpc_timeout=float(chain.get("rpc_timeout", 10.0)),
                flush_interval=float(audit.get("flush_interval", 2.0)),
                flush_entries=int(audit.get("flush_entries", 64)),
            )
        except KeyError as exc:
            raise ConfigurationError(f"proxy config is missing the key {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"proxy config has an invalid value: {exc}") from exc

    def _listen(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def to_toml(self) -> str:
        """Render as TOML (used by test fixtures and ``devnet up``)."""
        # json.dumps quotes and escapes a string the way a TOML basic string wants it.
        q = json.dumps
        return (
            "[proxy]\n"
            f"listen = {q(self._listen())}\n"
            f"data_dir = {q(str(self.data_dir))}\n"
            f"keystore = {q(str(self.keystore))}\n"
            f"password_env = {q(self.password_env)}\n\n"
            "[chain]\n"
            f"rpc_url = {q(self.rpc_url)}\n"
            f"deployment = {q(str(self.deployment))}\n"
            f"confirmations = {self.confirmations}\n"
            f"poll_interval = {self.poll_interval}\n"
            f"rpc_timeout = {self.rpc_timeout}\n\n"
            "[audit]\n"
            f"flush_interval = {self.flush_interval}\n"
            f"flush_entries = {self.flush_entries}\n"
        )


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    section = data.get(name)
    if not isinstance(section, dict):
        raise ConfigurationError(f"proxy config needs a [{name}] section")
    return section


def _path(base: Path, value: Any) -> Path:
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else base / p
