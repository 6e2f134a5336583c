"""A hostile proxy (or Kubo endpoint) must not crash the reader's process.

The test doubles below are labelled as such: httpx ``MockTransport`` answers stand in for
a *malicious* server; they compute nothing with emrshare's code. Each case runs in a child
process, because the bug they pin is a segfault (py_ecc raises the recursion limit to
100,000 on import, so ``json.loads`` of deeply nested input overflows the C stack).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_CLIENT = """
import asyncio, httpx, umbral_pre
import emrshare.chain  # imports py_ecc, which raises the recursion limit
from emrshare.errors import EmrShareError
from emrshare.proxy.client import PolicyKeys, ProxyEndpoint, ThresholdClient, ThresholdPolicy

BODY = open({path!r}, "rb").read()
def hostile(request):  # TEST DOUBLE: a malicious proxy
    return httpx.Response({status}, content=BODY, headers={{"content-type": "application/json"}})

sk = umbral_pre.SecretKey.random()
capsule, _ = umbral_pre.encrypt(sk.public_key(), b"x")
pk = bytes(sk.public_key().to_compressed_bytes())
policy = ThresholdPolicy(b"\\x01" * 32, 1, (ProxyEndpoint("0x" + "11" * 20, "http://p"),),
                         PolicyKeys(pk, pk, pk))
client = ThresholdClient(b"\\x02" * 32, chain_id=1, grants_contract="0x" + "22" * 20,
                         transport=httpx.MockTransport(hostile))
try:
    asyncio.run(client.reencrypt(policy, [capsule], deadline=10**9))
except EmrShareError as exc:
    print("typed:", type(exc).__name__)
"""

_KUBO = """
import httpx
import emrshare.chain  # imports py_ecc, which raises the recursion limit
from emrshare.errors import EmrShareError
from emrshare.storage import KuboStore

BODY = open({path!r}, "rb").read()
def hostile(request):  # TEST DOUBLE: a malicious Kubo RPC endpoint
    return httpx.Response({status}, content=BODY)

store = KuboStore("http://127.0.0.1:1", retries=0,
                  client=httpx.Client(transport=httpx.MockTransport(hostile)))
try:
    store.block_stat("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
except EmrShareError as exc:
    print("typed:", type(exc).__name__)
"""

DEEP = b"[" * 200_000 + b"]" * 200_000


def _run(
    template: str, body: bytes, status: int, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "answer.bin"
    path.write_bytes(body)
    code = textwrap.dedent(template.format(path=str(path), status=status))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (DEEP, 200),
        (DEEP, 403),
        (b'{"cfrags": [], "block": Infinity, "delegating_pk": "", "signature": ""}', 200),
    ],
)
def test_attack_hostile_proxy_answer_crashes_the_reader(
    body: bytes, status: int, tmp_path: Path
) -> None:
    done = _run(_CLIENT, body, status, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("typed:"), done.stdout + done.stderr[-2000:]


@pytest.mark.parametrize("body", [DEEP, b'{"Size": Infinity}'])
def test_attack_hostile_kubo_answer_crashes_the_writer(body: bytes, tmp_path: Path) -> None:
    done = _run(_KUBO, body, 200, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("typed:"), done.stdout + done.stderr[-2000:]
