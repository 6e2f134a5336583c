"""A devnet with a patient whose records were read, a pending request, and the patient's
portal running as a real ``emrshare portal`` process on loopback; Debian's chromium
driven by Selenium through Debian's chromedriver (no driver download: the path is given)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli_support import cli_json as as_json
from tests.cli_support import cli_ok as ok
from tests.cli_support import run_cli

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")
LAB = b"Synthetic lab result\nHb 13.9 g/dL\n"


@dataclass
class PortalSite:
    data: Path
    url: str  # the portal's own address: http://127.0.0.1:PORT/p/RANDOM/
    port: int
    login_url: str
    process: subprocess.Popen[str]
    record_id: str
    request_id: int
    files: Path

    @property
    def base(self) -> str:
        """Where the pages are (no trailing slash)."""
        return self.url.rstrip("/")

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fresh_login(self) -> str:
        """A new one-time link: the portal prints one per line it reads on stdin."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        url: str = json.loads(self.process.stdout.readline())["login_url"]
        return url


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalSite]:
    tmp = tmp_path_factory.mktemp("portal")
    data = tmp / "data"
    ok(data, "devnet", "up", "--proxies", "2", "--threshold", "2")
    proc: subprocess.Popen[str] | None = None
    try:
        ok(data, "--profile", "patient", "writer", "add", "hospital-a", "--category", "lab")
        (tmp / "lab.txt").write_bytes(LAB)
        added = as_json(
            data, "--profile", "hospital-a", "record", "add", str(tmp / "lab.txt"),
            "--patient", "patient", "--category", "lab", "--media-type", "text/plain",
        )  # fmt: skip
        ok(data, "--profile", "patient", "grant", "add", "--to", "hospital-b",
           "--category", "lab", "--expires", "30d")  # fmt: skip
        ok(data, "--profile", "hospital-b", "record", "get", added["record_id"],
           "--patient", "patient", "-o", str(tmp / "read.txt"))  # fmt: skip
        asked = as_json(
            data, "--profile", "insurer", "request", "add", "--patient", "patient",
            "--category", "lab", "--purpose", "HPAYMT", "--reason", "claim <b>77</b>",
        )  # fmt: skip
        env = dict(os.environ, EMRSHARE_DATA_DIR=str(data), EMRSHARE_PASSWORD="devnet")
        proc = subprocess.Popen(
            [sys.executable, "-m", "emrshare.cli", "--profile", "patient", "--json",
             "portal", "--port", "0"],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first, proc.stderr.read() if proc.stderr else "no output"
        started = json.loads(first)
        yield PortalSite(
            data, started["url"], started["port"], started["login_url"], proc, added["record_id"],
            int(asked["request_id"]), tmp,
        )  # fmt: skip
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        run_cli(data, "devnet", "down", "--wipe")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless chromium (a fresh profile, no background network: the machine is offline)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMEDRIVER.exists(), "make setup installs Debian's chromium-driver"
    downloads = tmp_path_factory.mktemp("downloads")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
        # evil.test resolves to the portal's address: a DNS-rebinding page's view of it.
        "--host-resolver-rules=MAP evil.test 127.0.0.1",
    ):  # fmt: skip
        opts.add_argument(flag)
    opts.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(60)
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()
