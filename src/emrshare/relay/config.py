"""What a relay process needs: the chain, the deployment, its funded key, its limits.

Built by ``emrshare relay serve`` from a network configuration and command-line flags
(and by :mod:`emrshare.devnet` for the development relay); nothing is read from a file
here, and the key is never part of :func:`repr`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from emrshare.chain import Deployment
from emrshare.errors import ConfigurationError

__all__ = ["FAULT_ENV", "FAULTS", "RelayConfig"]

#: Testing only: the environment variable that makes a relay process misbehave on
#: purpose, so tests can show a patient loses nothing when a relay fails half way.
FAULT_ENV = "EMRSHARE_RELAY_FAULT"
#: ``exit-before-send``: die when a request passed every check, before sending it;
#: ``exit-after-send``: send (and wait for the receipt), then die before answering;
#: ``lie``: answer 200 with a made-up transaction hash and send nothing.
FAULTS = ("exit-before-send", "exit-after-send", "lie")


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """A relay's settings. ``rate`` is operations per minute per patient (a token
    bucket holding ``burst``); ``max_in_flight`` requests are handled at once, the rest
    are refused ``rate_limited``; ``max_data`` bounds a request's calldata (bytes)."""

    rpc_url: str
    deployment: Deployment
    relayer_key: bytes = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 8650
    rate: float = 30.0
    burst: int = 10
    max_in_flight: int = 8
    max_data: int = 64 * 1024
    receipt_timeout: float = 45.0
    rpc_timeout: float = 10.0
    fault: str | None = None

    def __post_init__(self) -> None:
        if len(self.relayer_key) != 32:
            raise ConfigurationError("the relayer key is 32 bytes; check --key-file")
        if not 1 <= self.port <= 65535:
            raise ConfigurationError(f"port {self.port} is not 1-65535; pass another --port")
        if not 0 < self.rate <= 1e6:
            raise ConfigurationError("--rate is operations per minute per patient, above 0")
        if self.burst < 1 or self.max_in_flight < 1 or self.max_data < 4:
            raise ConfigurationError("--burst and --max-in-flight must be at least 1")
        if self.fault is not None and self.fault not in FAULTS:
            raise ConfigurationError(
                f"${FAULT_ENV}={self.fault!r} is not one of {', '.join(FAULTS)}; unset it "
                "(it is for tests only)"
            )

    @staticmethod
    def fault_from_env() -> str | None:
        """The fault :data:`FAULT_ENV` asks for (testing only), ``None`` normally."""
        return os.environ.get(FAULT_ENV) or None
