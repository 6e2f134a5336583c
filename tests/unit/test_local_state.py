"""Local files under attack (issue #10, holes 9 and 10): damaged or planted files in a data
dir give one typed error and are left byte-identical; everything is 0600/0700 from its
creation; a planted symlink is never written through; node banners never reach a log."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emrshare import ConfigurationError, KeystoreError, LocalStateError
from emrshare._files import private_dir, read_json_object, write_atomically
from emrshare._logfilter import REDACTED, keep
from emrshare._process import spawn
from emrshare.chain import EventCursor
from emrshare.chain.deploy import Deployment
from emrshare.cli import app
from emrshare.crypto import PatientKeys, load_keystore, save_keystore
from emrshare.devnet import DEV_MNEMONIC, dev_secrets
from emrshare.devnet._files import read_pids, read_settings
from emrshare.journal import Journal
from emrshare.journal._spool import _Spool
from emrshare.network import NetworkConfig
from emrshare.proxy.node import ProxyConfig
from emrshare.proxy.node.store import ProxyStore
from emrshare.roles import Profiles
from emrshare.roles._state import MAX_LOCAL_EPOCH, load_epochs, save_epochs

FAST = {"fast_kdf": True}
FIRST_DEV_KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ROOT = os.geteuid() == 0
runner = CliRunner()


@pytest.fixture(autouse=True)
def _loose_umask() -> Iterator[None]:
    # The modes below must come from the code, not from a strict umask of the test run.
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _cli(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(
        app, ["--data-dir", str(data_dir), *args], env={"EMRSHARE_PASSWORD": "pw"}
    )
    return result.exit_code, result.stdout, result.stderr


def _one_line(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 1, (code, out, err)
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: "), err
    for needle in needles:
        assert needle in err, (needle, err)


def _snapshot(path: Path) -> tuple[str, bytes | None]:
    if path.is_symlink():
        return "link", os.readlink(path).encode()
    if path.is_dir():
        return "dir", None
    return "file", path.read_bytes()


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# -- damaged JSON files -------------------------------------------------------------------

DAMAGED_JSON: dict[str, Callable[[Path], None]] = {
    "list": lambda p: p.write_text("[1, 2, 3]"),
    "string": lambda p: p.write_text('"patient"'),
    "null": lambda p: p.write_text("null"),
    "truncated": lambda p: p.write_text('{"kind": "pat'),
    "garbage": lambda p: p.write_bytes(os.urandom(64) + b"\xff\xfe"),
    "empty": lambda p: p.write_bytes(b""),
    "nested-deep": lambda p: p.write_text("[" * 100_000),
    "directory": lambda p: p.mkdir(),
    "symlink": lambda p: p.symlink_to("/etc/hostname"),
}

BAD_PROFILE_DOCS = {
    "kind-wrong": {"kind": "root", "address": "0x" + "11" * 20},
    "kind-missing": {"address": "0x" + "11" * 20},
    "address-int": {"kind": "patient", "address": 5},
    "address-short": {"kind": "patient", "address": "0x1234"},
    "address-list": {"kind": "member", "address": ["0x" + "11" * 20]},
    "role-int": {"kind": "member", "address": "0x" + "11" * 20, "role": 7},
}


def _damage_profile(tmp_path: Path, damage: Callable[[Path], None]) -> Path:
    Profiles(tmp_path).create("alice", "patient", "pw", **FAST)
    path = tmp_path / "profiles" / "alice" / "profile.json"
    path.unlink()
    damage(path)
    return path


@pytest.mark.parametrize("damage", DAMAGED_JSON.values(), ids=DAMAGED_JSON.keys())
def test_attack_damaged_profile_json_is_one_line_and_untouched(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    path = _damage_profile(tmp_path, damage)
    before = _snapshot(path)
    _one_line(*_cli(tmp_path, "--profile", "alice", "whoami"), str(path), "move it aside")
    with pytest.raises(LocalStateError) as info:
        Profiles(tmp_path).get("alice")
    assert info.value.path == str(path)
    assert _snapshot(path) == before


@pytest.mark.parametrize("doc", BAD_PROFILE_DOCS.values(), ids=BAD_PROFILE_DOCS.keys())
def test_attack_profile_json_of_the_wrong_shape(tmp_path: Path, doc: dict[str, object]) -> None:
    path = _damage_profile(tmp_path, lambda p: p.write_text(json.dumps(doc)))
    before = path.read_bytes()
    _one_line(*_cli(tmp_path, "--profile", "alice", "whoami"), "profile", "damaged")
    # `init` over a damaged profile refuses too, and writes nothing.
    _one_line(*_cli(tmp_path, "--profile", "alice", "init"), "already exists")
    assert path.read_bytes() == before


BAD_EPOCHS: dict[str, object] = {
    "epochs-list": {"epochs": [1, 2]},
    "epochs-missing": {"categories": {"lab": 0}},
    "epoch-negative": {"epochs": {"lab": -1}},
    "epoch-bool": {"epochs": {"lab": True}},
    "epoch-float": {"epochs": {"lab": 1.5}},
    "epoch-string": {"epochs": {"lab": "3"}},
    "epoch-huge": {"epochs": {"lab": 10**12}},
    "epoch-just-too-big": {"epochs": {"lab": MAX_LOCAL_EPOCH + 1}},
    "category-empty": {"epochs": {"": 0}},
    "category-too-long": {"epochs": {"x" * 65: 0}},
    "too-many-tags": {"epochs": {f"c{i}": MAX_LOCAL_EPOCH for i in range(11)}},
}


@pytest.mark.parametrize("doc", BAD_EPOCHS.values(), ids=BAD_EPOCHS.keys())
def test_attack_patient_json_with_wrong_types_is_refused(tmp_path: Path, doc: object) -> None:
    path = tmp_path / "patient.json"
    path.write_text(json.dumps(doc))
    before = path.read_bytes()
    with pytest.raises(LocalStateError, match="move it aside") as info:
        load_epochs(path)
    assert info.value.path == str(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("damage", DAMAGED_JSON.values(), ids=DAMAGED_JSON.keys())
def test_attack_damaged_patient_json(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    path = tmp_path / "patient.json"
    damage(path)
    before = _snapshot(path)
    with pytest.raises(LocalStateError):
        load_epochs(path)
    assert _snapshot(path) == before


def test_patient_json_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "patient.json"
    assert load_epochs(path) == {}
    save_epochs(path, {"lab": 3, "imaging": 0})
    assert load_epochs(path) == {"lab": 3, "imaging": 0}
    assert _mode(path) == 0o600


KEYSTORE_DAMAGE: dict[str, Callable[[dict[str, object]], object]] = {
    "list": lambda d: [d],
    "format-missing": lambda d: {k: v for k, v in d.items() if k != "format"},
    "kdf-not-object": lambda d: {**d, "kdf": "argon2id"},
    "salt-int": lambda d: {**d, "kdf": {**d["kdf"], "salt": 5}},  # type: ignore[dict-item]
    "opslimit-infinite": lambda d: {**d, "kdf": {**d["kdf"], "opslimit": float("inf")}},  # type: ignore[dict-item]
    "ciphertext-null": lambda d: {**d, "ciphertext": None},
    "kind-int": lambda d: {**d, "kind": 3},
}


@pytest.mark.parametrize("damage", KEYSTORE_DAMAGE.values(), ids=KEYSTORE_DAMAGE.keys())
def test_attack_keystore_of_the_wrong_shape(
    tmp_path: Path, damage: Callable[[dict[str, object]], object]
) -> None:
    path = tmp_path / "keystore.json"
    save_keystore(path, PatientKeys(b"\x01" * 32), "pw", opslimit=1, memlimit=8192)
    path.write_text(json.dumps(damage(json.loads(path.read_text()))))
    before = path.read_bytes()
    with pytest.raises(KeystoreError):
        load_keystore(path, "pw")
    assert path.read_bytes() == before


@pytest.mark.parametrize("damage", DAMAGED_JSON.values(), ids=DAMAGED_JSON.keys())
def test_attack_damaged_keystore(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    path = tmp_path / "keystore.json"
    damage(path)
    with pytest.raises(KeystoreError):
        load_keystore(path, "pw")


def test_attack_truncated_keystore_through_the_cli(tmp_path: Path) -> None:
    profile, _ = Profiles(tmp_path).create("alice", "patient", "pw", **FAST)
    text = profile.keystore_path.read_text()
    profile.keystore_path.write_text(text[: len(text) // 2])
    before = profile.keystore_path.read_bytes()
    _one_line(*_cli(tmp_path, "--profile", "alice", "grant", "list"), "keystore")
    assert profile.keystore_path.read_bytes() == before


@pytest.mark.parametrize("damage", DAMAGED_JSON.values(), ids=DAMAGED_JSON.keys())
def test_attack_damaged_network_json_is_one_line(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    Profiles(tmp_path).create("alice", "patient", "pw", **FAST)
    path = tmp_path / "network.json"
    damage(path)
    before = _snapshot(path)
    _one_line(*_cli(tmp_path, "--profile", "alice", "record", "list"), str(path))
    assert _snapshot(path) == before


@pytest.mark.parametrize(
    "doc",
    [
        {"rpc_url": "http://127.0.0.1:1", "deployment": "x"},
        {"rpc_url": "http://127.0.0.1:1", "deployment": {"chain_id": "a"}},
        {"rpc_url": "x", "store": [], "deployment": {}},
    ],
)
def test_attack_network_json_of_the_wrong_shape(tmp_path: Path, doc: object) -> None:
    path = tmp_path / "network.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(LocalStateError, match="move it aside"):
        NetworkConfig.read(path)


@pytest.mark.parametrize("damage", DAMAGED_JSON.values(), ids=DAMAGED_JSON.keys())
def test_attack_damaged_deployment_json(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    path = tmp_path / "deployment.json"
    damage(path)
    before = _snapshot(path)
    with pytest.raises(LocalStateError):
        Deployment.read(path)
    with pytest.raises(ConfigurationError):
        EventCursor(path)
    assert _snapshot(path) == before


@pytest.mark.parametrize(
    ("name", "doc"),
    [
        ("pids.json", {"anvil": {"pid": "1", "url": "http://x"}}),
        ("pids.json", {"anvil": {"pid": True, "url": "http://x"}}),
        ("pids.json", {"anvil": 1234}),
        ("pids.json", [1234]),
        ("settings.json", {"port": "8545"}),
        ("settings.json", {"port": 70000}),
        ("settings.json", {"port": 8545, "proxy_ports": "1,2"}),
        ("settings.json", {"port": 8545, "proxy_ports": [1, None]}),
    ],
)
def test_attack_devnet_state_files_of_the_wrong_shape(
    tmp_path: Path, name: str, doc: object
) -> None:
    dev = tmp_path / "devnet"
    dev.mkdir()
    path = dev / name
    path.write_text(json.dumps(doc))
    before = path.read_bytes()
    with pytest.raises(LocalStateError):
        read_pids(path) if name == "pids.json" else read_settings(path)
    if name == "pids.json":
        # `devnet down` used to take a garbage list for "nothing runs" and delete it.
        _one_line(*_cli(tmp_path, "devnet", "down"), str(path))
    assert path.read_bytes() == before


PROXY_CONFIG_DAMAGE = {
    "top-level-list": "[1]",
    "keystore-int": '{"proxy": {"keystore": 5}, "chain": {"rpc_url": "http://x", '
    '"deployment": "d"}}',
    "port-bool": '{"proxy": {"keystore": "k", "listen": "127.0.0.1:x"}, "chain": '
    '{"rpc_url": "http://x", "deployment": "d"}}',
    "confirmations-string": '{"proxy": {"keystore": "k"}, "chain": {"rpc_url": "http://x", '
    '"deployment": "d", "confirmations": "2"}}',
    "confirmations-bool": '{"proxy": {"keystore": "k"}, "chain": {"rpc_url": "http://x", '
    '"deployment": "d", "confirmations": true}}',
    "poll-negative": '{"proxy": {"keystore": "k"}, "chain": {"rpc_url": "http://x", '
    '"deployment": "d", "poll_interval": -1}}',
    "audit-list": '{"proxy": {"keystore": "k"}, "chain": {"rpc_url": "http://x", '
    '"deployment": "d"}, "audit": []}',
    "rpc-url-list": '{"proxy": {"keystore": "k"}, "chain": {"rpc_url": ["http://x"], '
    '"deployment": "d"}}',
    "flush-zero": '{"proxy": {"keystore": "k"}, "chain": {"rpc_url": "http://x", '
    '"deployment": "d"}, "audit": {"flush_entries": 0}}',
}


@pytest.mark.parametrize("text", PROXY_CONFIG_DAMAGE.values(), ids=PROXY_CONFIG_DAMAGE.keys())
def test_attack_proxy_config_of_the_wrong_types(tmp_path: Path, text: str) -> None:
    path = tmp_path / "proxy.json"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=r"proxy config"):
        ProxyConfig.load(path)


def test_attack_proxy_config_toml_of_the_wrong_types(tmp_path: Path) -> None:
    path = tmp_path / "proxy.toml"
    path.write_text('[proxy]\nkeystore = 1\n[chain]\nrpc_url = "http://x"\ndeployment = "d"\n')
    with pytest.raises(ConfigurationError, match=r"\[proxy\] keystore"):
        ProxyConfig.load(path)


# -- damaged SQLite databases -------------------------------------------------------------


def _valid_db(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.executemany("INSERT INTO t VALUES (?)", [(os.urandom(200),) for _ in range(200)])
    db.commit()
    db.close()


def _truncated(path: Path) -> None:
    _valid_db(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


DAMAGED_DB: dict[str, Callable[[Path], None]] = {
    "garbage": lambda p: p.write_bytes(os.urandom(8192)),
    "text": lambda p: p.write_text("this is not a database\n" * 50),
    "truncated": _truncated,
    "header-only": lambda p: p.write_bytes(b"SQLite format 3\x00"),
    "zero-length": lambda p: p.write_bytes(b""),
    "directory": lambda p: p.mkdir(),
    "symlink": lambda p: p.symlink_to(p.parent / "elsewhere.db"),
}


@pytest.mark.parametrize("damage", DAMAGED_DB.values(), ids=DAMAGED_DB.keys())
def test_attack_damaged_journal_db(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    directory = tmp_path / "journal"
    directory.mkdir()
    path = directory / "journal.db"
    damage(path)
    before = _snapshot(path)
    with pytest.raises(LocalStateError, match="move it aside") as info:
        Journal(directory)
    assert info.value.path == str(path)
    assert _snapshot(path) == before
    assert not (tmp_path / "journal" / "elsewhere.db").exists()


@pytest.mark.parametrize("damage", DAMAGED_DB.values(), ids=DAMAGED_DB.keys())
def test_attack_damaged_proxy_db(tmp_path: Path, damage: Callable[[Path], None]) -> None:
    path = tmp_path / "data" / "proxy.sqlite3"
    path.parent.mkdir()
    damage(path)
    before = _snapshot(path)
    with pytest.raises(LocalStateError, match="move it aside"):
        ProxyStore(path, b"\x02" * 32)
    assert _snapshot(path) == before


@pytest.mark.skipif(ROOT, reason="root reads any file whatever its mode")
def test_attack_unreadable_journal_db(tmp_path: Path) -> None:
    Journal(tmp_path / "journal").close()
    path = tmp_path / "journal" / "journal.db"
    path.chmod(0)
    with pytest.raises(LocalStateError, match="permission denied"):
        Journal(tmp_path / "journal")
    assert _mode(path) == 0


def test_new_databases_work_and_are_private(tmp_path: Path) -> None:
    Journal(tmp_path / "j").close()
    Journal(tmp_path / "j").close()  # reopening a database of ours is fine
    store = ProxyStore(tmp_path / "p" / "proxy.sqlite3", b"\x03" * 32)
    store.close()
    ProxyStore(tmp_path / "p" / "proxy.sqlite3", b"\x03" * 32).close()
    for path in (tmp_path / "j" / "journal.db", tmp_path / "p" / "proxy.sqlite3"):
        assert _mode(path) == 0o600
        assert _mode(path.parent) == 0o700
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".new")]


# -- modes and symlinks -------------------------------------------------------------------


def _assert_private_tree(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        want = 0o700 if path.is_dir() else 0o600
        assert _mode(path) == want, f"{path} is {oct(_mode(path))}, want {oct(want)}"


def test_attack_files_created_world_readable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    profiles = Profiles(data)
    profile, _ = profiles.create("alice", "patient", "pw", **FAST)
    profiles.create("hosp", "member", "pw", role="provider", **FAST)
    profiles.set_role("hosp", "provider")
    private_dir(profile.state_dir)  # as Patient() does
    save_epochs(profile.state_dir / "patient.json", {"lab": 0})
    Journal(profile.state_dir / "journal").close()
    spool = _Spool(profile.state_dir / "journal" / "spool" / "x.bin", 4)
    spool.write(b"0123456789")
    spool.finish()
    ProxyStore(data / "devnet" / "proxies" / "p1" / "data" / "proxy.sqlite3", b"\x01" * 32).close()
    Deployment(31337, {"Grants": "0x" + "11" * 20}, 0, "0x" + "22" * 20).write(
        data / "devnet" / "deployment.json"
    )
    EventCursor(data / "devnet" / "cursors" / "c.json").advance("x", 5)
    _assert_private_tree(data)


def test_attack_release_one_world_readable_data_dir_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    profiles = Profiles(data)
    profile, _ = profiles.create("alice", "patient", "pw", **FAST)
    private_dir(profile.state_dir)  # as Patient() does
    save_epochs(profile.state_dir / "patient.json", {"lab": 0})
    # What release 1 left behind: 0755 directories, 0644 files (patient.json, logs).
    for path in [data, *data.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    (data / "devnet").mkdir(mode=0o755)
    (data / "devnet" / "anvil.log").write_text("old log\n")
    (data / "devnet" / "anvil.log").chmod(0o644)
    assert Profiles(data).get("alice").address == profile.address
    _assert_private_tree(data)


def test_attack_symlink_planted_for_patient_json_is_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    state = tmp_path / "state"
    state.mkdir()
    (state / "patient.json").symlink_to(victim)
    # Old temp names were predictable: a link there was written through, too.
    (state / "patient.tmp").symlink_to(victim)
    with pytest.raises(LocalStateError, match="symbolic link"):
        load_epochs(state / "patient.json")
    save_epochs(state / "patient.json", {"lab": 1})
    assert victim.read_text() == "precious\n" and _mode(victim) == 0o644
    assert not (state / "patient.json").is_symlink()
    assert _mode(state / "patient.json") == 0o600
    assert load_epochs(state / "patient.json") == {"lab": 1}


def test_attack_symlink_planted_for_profile_json_is_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    directory = tmp_path / "data" / "profiles" / "alice"
    directory.mkdir(parents=True)
    (directory / "profile.json.tmp").symlink_to(victim)
    profiles = Profiles(tmp_path / "data")
    profiles.create("alice", "member", "pw", **FAST)
    assert victim.read_text() == "precious\n"
    (directory / "profile.json").unlink()
    (directory / "profile.json").symlink_to(victim)
    with pytest.raises(LocalStateError, match="symbolic link"):
        profiles.get("alice")
    assert victim.read_text() == "precious\n"


def test_attack_symlink_planted_for_a_log_is_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    log = tmp_path / "anvil.log"
    log.symlink_to(victim)
    with pytest.raises(LocalStateError, match="symbolic link"):
        spawn([sys.executable, "-c", "print('hi')"], log)
    assert victim.read_text() == "precious\n"


def test_atomic_write_keeps_0600_and_replaces_a_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("v")
    target = tmp_path / "f.json"
    target.symlink_to(victim)
    write_atomically(target, '{"a": 1}')
    assert read_json_object(target, "test") == {"a": 1}
    assert _mode(target) == 0o600 and victim.read_text() == "v"
    target.chmod(0o644)
    write_atomically(target, b'{"a": 2}')
    assert _mode(target) == 0o600


def test_spawned_log_is_private_and_tightened(tmp_path: Path) -> None:
    log = tmp_path / "proxy.log"
    log.write_text("release 1\n")
    log.chmod(0o644)
    child_file = tmp_path / "child-file"
    proc = spawn([sys.executable, "-c", f"open({str(child_file)!r}, 'w').write('x')"], log)
    assert proc.wait(30) == 0
    assert _mode(log) == 0o600
    assert _mode(child_file) == 0o600  # the child runs with umask 077


# -- node banners ---------------------------------------------------------------------------

BANNER = f"""Available Accounts
==================

(0) 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 (10000.000000000000000000 ETH)

Private Keys
==================

(0) 0x{FIRST_DEV_KEY}
(1) 59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d

Wallet
==================
Mnemonic:          {DEV_MNEMONIC}
Derivation path:   m/44'/60'/0'/0/

Listening on 127.0.0.1:8545
eth_sendRawTransaction
    Transaction: 0x3f00c2b6bdd3b3ff1ac6d8a2f43ce0fd6a1fbd1b0dd4e9ac8f6e0cda1fa77ab1
debug: key was {FIRST_DEV_KEY.upper()}
"""


def test_log_filter_drops_every_key_and_the_mnemonic() -> None:
    secrets = [s.lower().encode() for s in dev_secrets()]
    secrets += [s[2:] for s in secrets if s.startswith(b"0x")]
    lines = [keep(line.encode() + b"\n", secrets) for line in BANNER.splitlines()]
    text = b"".join(lines).decode()
    assert FIRST_DEV_KEY not in text.lower() and "junk" not in text
    assert "59c6995e" not in text
    assert "Transaction: 0x3f00c2b6" in text and "Listening on 127.0.0.1:8545" in text
    assert lines.count(REDACTED) == 4


def test_attack_banner_keys_reach_the_log(tmp_path: Path) -> None:
    """A child printing a node banner (as anvil and ganache do) through ``spawn``."""
    log = tmp_path / "node.log"
    script = f"import sys; sys.stdout.write({BANNER!r}); sys.stdout.flush()"
    proc = spawn([sys.executable, "-c", script], log, redact=dev_secrets())
    assert proc.wait(30) == 0
    deadline = time.monotonic() + 30
    while "Transaction" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # the filter process drains the pipe after the child exited
    time.sleep(0.2)
    text = log.read_text()
    assert "Listening on" in text and "Transaction: 0x3f00c2b6" in text
    assert FIRST_DEV_KEY not in text.lower() and "test test test" not in text
    assert _mode(log) == 0o600
