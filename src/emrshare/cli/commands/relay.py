"""``relay serve``: run a relay that pays the gas of patients' signed operations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emrshare.cli._context import state

app = typer.Typer(no_args_is_help=True, help="Run a relay that pays patients' gas.")


def _relayer_key(key_file: Path | None, dev_account: int | None) -> bytes:
    from emrshare._files import read_private
    from emrshare.errors import ConfigurationError

    if (key_file is None) == (dev_account is None):
        raise ConfigurationError(
            "name the relayer's funded key: --key-file FILE (hex private key, mode 0600) "
            "or, on a devnet, --dev-account N"
        )
    if dev_account is not None:
        from emrshare.devnet.devnode import dev_private_keys

        if not 0 <= dev_account < 100:
            raise ConfigurationError("--dev-account is a development account index, 0-99")
        return dev_private_keys(dev_account + 1)[dev_account]
    assert key_file is not None
    try:
        text = read_private(key_file, "relayer key file", max_bytes=200).decode().strip()
    except FileNotFoundError:
        raise ConfigurationError(f"no relayer key file at {key_file}; check --key-file") from None
    except UnicodeDecodeError:
        text = ""
    hexed = text.removeprefix("0x")
    if len(hexed) != 64 or any(c not in "0123456789abcdefABCDEF" for c in hexed):
        raise ConfigurationError(
            f"{key_file} does not hold a private key (64 hex digits, optionally 0x-prefixed)"
        )
    return bytes.fromhex(hexed)


@app.command()
def serve(
    ctx: typer.Context,
    network: Annotated[
        Path | None,
        typer.Option(help="network configuration (default: the data dir's network.json)"),
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option(help="the relayer's funded private key (hex, mode 0600)")
    ] = None,
    dev_account: Annotated[
        int | None, typer.Option(help="devnet only: use development account N as the relayer")
    ] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8650,
    rate: Annotated[
        float, typer.Option(help="operations per minute per patient (token bucket)")
    ] = 30.0,
    burst: Annotated[int, typer.Option(help="operations a patient may send at once")] = 10,
    max_in_flight: Annotated[
        int, typer.Option(help="requests handled at once; more are refused rate_limited")
    ] = 8,
    log_level: Annotated[str, typer.Option(help="uvicorn/relay log level")] = "info",
) -> None:
    """Relay patients' signed operations to the deployment's patient contracts, paying
    the gas from a funded key (until Ctrl-C / SIGTERM)."""
    from emrshare.network import NetworkConfig
    from emrshare.relay.app import serve as run
    from emrshare.relay.config import RelayConfig
    from emrshare.roles.profiles import Profiles

    path = network if network is not None else Profiles(state(ctx).data_dir).network_path
    config = NetworkConfig.read(path)
    run(
        RelayConfig(
            rpc_url=config.rpc_url,
            deployment=config.deployment,
            relayer_key=_relayer_key(key_file, dev_account),
            host=host,
            port=port,
            rate=rate,
            burst=burst,
            max_in_flight=max_in_flight,
            fault=RelayConfig.fault_from_env(),
        ),
        log_level=log_level,
    )
