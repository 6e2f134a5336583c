"""ThresholdClient.reencrypt_sync inside a running event loop is the typed error the
sync facades raise there, not asyncio's RuntimeError (and no coroutine is left unawaited)."""

from __future__ import annotations

import asyncio
import os
import warnings
from typing import Any

import pytest

from emrshare.errors import ConfigurationError
from emrshare.proxy import ThresholdClient


def test_reencrypt_sync_inside_a_loop_is_a_configuration_error() -> None:
    client = ThresholdClient(os.urandom(31) + b"\x01", chain_id=1, grants_contract="0x" + "11" * 20)
    policy: Any = object()

    async def main() -> None:
        with pytest.raises(ConfigurationError, match="event loop"):
            client.reencrypt_sync(policy, [], deadline=0)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(main())
