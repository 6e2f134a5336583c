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

from emrshare._files import MAX_JSON_DEPTH, nesting_depth
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
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read proxy config {path}: {exc}") from exc
        try:
            if nesting_depth(text) > MAX_JSON_DEPTH:
                raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
            data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError, RecursionError) as exc:
            raise ConfigurationError(f"proxy config {path} does not parse: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigurationError(
                f"proxy config {path} holds a JSON {type(data).__name__}, not an object "
                "with [proxy] and [chain] sections; fix the file"
            )
        return cls.from_dict(data, base=path.resolve().parent, source=f"proxy config {path}")

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], base: Path, *, source: str = "proxy config"
    ) -> ProxyConfig:
        """Build from the parsed sections; relative paths are taken from ``base``.

        Every value is type-checked: a number where a path belongs, a boolean where a
        number belongs or an out-of-range port is a :class:`ConfigurationError` naming
        the key, never taken as something else.
        """
        proxy = _section(data, "proxy")
        chain = _section(data, "chain")
        audit = data.get("audit", {})
        if not isinstance(audit, dict):
            raise ConfigurationError(f"{source}: [audit] must be a section; fix the file")
        f = _Fields(source)
        listen = f.text(proxy, "proxy", "listen", "127.0.0.1:7701")
        host, _, port = listen.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")  # "[::]:7701" → "::"
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigurationError(
                f"{source}: [proxy] listen {listen!r} is not HOST:PORT (port 1-65535); fix it"
            )
        return cls(
            keystore=_path(base, f.text(proxy, "proxy", "keystore")),
            password_env=f.text(proxy, "proxy", "password_env", "EMRSHARE_PROXY_PASSWORD"),
            rpc_url=f.text(chain, "chain", "rpc_url"),
            deployment=_path(base, f.text(chain, "chain", "deployment")),
            data_dir=_path(base, f.text(proxy, "proxy", "data_dir", "data")),
            host=host or "127.0.0.1",
            port=int(port),
            confirmations=f.integer(chain, "chain", "confirmations", 0, low=0),
            poll_interval=f.number(chain, "chain", "poll_interval", 0.5),
            rpc_timeout=f.number(chain, "chain", "rpc_timeout", 10.0),
            flush_interval=f.number(audit, "audit", "flush_interval", 2.0),
            flush_entries=f.integer(audit, "audit", "flush_entries", 64, low=1),
        )

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


_REQUIRED: Any = object()


@dataclass(frozen=True, slots=True)
class _Fields:
    """Typed reads of config values; errors name the file, section and key."""

    source: str

    def _get(self, section: dict[str, Any], name: str, key: str, default: Any) -> Any:
        if key in section:
            return section[key]
        if default is _REQUIRED:
            raise ConfigurationError(f"{self.source} is missing [{name}] {key}; add it")
        return default

    def _bad(self, name: str, key: str, want: str, value: Any) -> ConfigurationError:
        shown = repr(value) if isinstance(value, str | int | float | bool) else type(value).__name__
        return ConfigurationError(
            f"{self.source}: [{name}] {key} must be {want}, not {shown[:40]}; fix the file"
        )

    def text(self, section: dict[str, Any], name: str, key: str, default: Any = _REQUIRED) -> str:
        value = self._get(section, name, key, default)
        if not isinstance(value, str) or not value or "\x00" in value:
            raise self._bad(name, key, "a non-empty string", value)
        return value

    def integer(
        self, section: dict[str, Any], name: str, key: str, default: int, *, low: int
    ) -> int:
        value = self._get(section, name, key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise self._bad(name, key, f"an integer ≥ {low}", value)
        return value

    def number(self, section: dict[str, Any], name: str, key: str, default: float) -> float:
        value = self._get(section, name, key, default)
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not 0 < value < 86400 * 365
        ):
            raise self._bad(name, key, "a positive number of seconds", value)
        return float(value)


def _path(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p
