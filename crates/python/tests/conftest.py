"""Fixtures: the workspace's binaries (``the-block``, ``tb-cli``) and a real devnet on
free ports, started once per test module and stopped after it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import pytest

import the_block as tb

REPO = Path(__file__).resolve().parents[3]


def binary(name: str) -> Path:
    """A workspace binary: ``$TB_BIN_DIR/NAME``, else the dev profile's in the target
    directory (``$CARGO_TARGET_DIR``, default ``target/``). Missing, the test fails with
    the command that builds it (CI builds both before pytest)."""
    if os.environ.get("TB_BIN_DIR"):
        d = Path(os.environ["TB_BIN_DIR"])
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", "target"))
        d = (target if target.is_absolute() else REPO / target) / "debug"
    p = d / name
    if not p.is_file():
        pytest.fail(f"{p} is missing: build it with `cargo build -p the-block -p tb-cli`")
    return p


class Devnet:
    """``the-block devnet`` in a temporary directory: 200 ms blocks, RPC and metrics
    on free ports (read back from its ``node.json``)."""

    def __init__(self, bin_path: Path, data: Path) -> None:
        self.data = data
        data.mkdir(parents=True, exist_ok=True)
        self.log_path = data / "node.log"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("TB_") or k in ("TB_LOG_LEVEL",)
        }
        self.proc = subprocess.Popen(
            [
                str(bin_path),
                "devnet",
                "--data-dir",
                str(data),
                "--rpc-addr",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
                "--p2p-listen",
                "/ip4/127.0.0.1/tcp/0",
                "--block-interval-ms",
                "200",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        info = self._wait_node_json(60.0)
        self.url = f"http://{info['rpc']}"
        token_file = info.get("admin_token_file")
        self.admin_token: Optional[str] = (
            Path(token_file).read_text().strip() if token_file else None
        )
        self.client = tb.Client(self.url, admin_token=self.admin_token)

    def _wait_node_json(self, limit: float) -> dict:  # type: ignore[type-arg]
        t0 = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the devnet exited ({self.proc.returncode}):\n{self.log()}")
            try:
                return dict(json.loads((self.data / "node.json").read_text()))
            except (OSError, ValueError):
                pass
            if time.monotonic() - t0 > limit:
                raise RuntimeError(f"no node.json after {limit} s:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""

    def key(self, name: str) -> tb.SecretKey:
        """A dev key from the devnet's ``dev-keys`` directory (``devnet-alice``, …)."""
        return tb.SecretKey.from_file(self.data / "dev-keys" / f"{name}.key")

    def wait_for(self, what: str, limit: float, check: Callable[[], bool]) -> None:
        t0 = time.monotonic()
        while not check():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the devnet exited while waiting for {what}:\n{self.log()}")
            if time.monotonic() - t0 > limit:
                raise RuntimeError(f"no {what} after {limit} s; node log:\n{self.log()}")
            time.sleep(0.2)

    def funded(self, name: str = "devnet-alice") -> tb.Wallet:
        """A wallet of dev key ``name`` once the miner has funded it and the devnet's
        provider has staked."""
        key = self.key(name)
        self.wait_for(
            f"funds for {name}",
            120.0,
            lambda: self.client.balance(key.address).industrial >= 20_000_000,
        )
        provider = self.key("devnet-provider").address

        def staked() -> bool:
            p = self.client.provider(provider)
            return p is not None and p.stake >= 100_000_000

        self.wait_for("the devnet's provider staked", 120.0, staked)
        return tb.Wallet(self.client, key)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    d = Devnet(binary("the-block"), tmp_path_factory.mktemp("devnet"))
    try:
        yield d
    finally:
        d.stop()


def tb_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs ``tb-cli ARGS`` and returns the finished process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TB_")}
    return subprocess.run(
        [str(binary("tb-cli")), *args], capture_output=True, text=True, env=env, timeout=300
    )


def cli_json(*args: str) -> dict:  # type: ignore[type-arg]
    """``tb-cli --json ARGS``'s answer; the command must succeed."""
    r = tb_cli("--json", *args)
    assert r.returncode == 0, f"tb-cli {' '.join(args)}: {r.stderr}"
    return dict(json.loads(r.stdout))


def command_exists(cmd: List[str]) -> bool:
    try:
        subprocess.run(cmd, capture_output=True, timeout=30)
        return True
    except (OSError, subprocess.TimeoutExpired):
        return False
