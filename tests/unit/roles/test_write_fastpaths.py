"""The write path's shortcuts compute exactly what the reference functions do."""

from __future__ import annotations

import os

from web3 import Web3

from emrshare.chain import record_id, record_ids
from emrshare.types import CategoryTag


def test_stream_record_ids_match_chain_record_id() -> None:
    for _ in range(20):
        patient = Web3.to_checksum_address(os.urandom(20))
        writer = Web3.to_checksum_address(os.urandom(20))
        tag = CategoryTag(os.urandom(32))
        of = record_ids(patient, tag, writer)
        for n in (0, 1, 7, 1000, 2**32, 2**64 - 1):
            assert of(n) == record_id(patient, tag, writer, n)
