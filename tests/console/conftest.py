"""The operator's console under test: one devnet, shared by the session, that has
settled a job and slashed a cheating provider.

The devnet's provider runs with ``--test-corrupt-op 40``: a job of fewer ops (the
``matmul-chain`` example, 7 ops) is answered honestly and settles; a job with an op 40
(the ``transformer`` example, 72 ops) gets a wrong leaf, which the devnet's verifier
challenges and the referee slashes. Binaries: ``$TB_BIN_DIR``, else the dev profile's
in ``$CARGO_TARGET_DIR`` (default ``target/``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

REPO = Path(__file__).resolve().parents[2]
CORRUPT_OP = 40


def binary(name: str) -> Path:
    if os.environ.get("TB_BIN_DIR"):
        d = Path(os.environ["TB_BIN_DIR"])
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", "target"))
        d = (target if target.is_absolute() else REPO / target) / "debug"
    p = d / name
    if not p.is_file():
        pytest.fail(f"{p} is missing: build it with `cargo build -p the-block -p tb-cli`")
    return p


def rpc(url: str, method: str, params: Any = None) -> Any:
    """One JSON-RPC call; a JSON-RPC error raises RuntimeError with its code."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    req = urllib.request.Request(url, body.encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        answer = json.loads(r.read())
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def wait_for(what: str, limit: float, check: Callable[[], Any], log: Callable[[], str]) -> Any:
    t0 = time.monotonic()
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() - t0 > limit:
            raise AssertionError(f"no {what} after {limit} s; node log:\n{log()}")
        time.sleep(0.3)


@dataclass
class Scene:
    data: Path
    url: str
    metrics: str
    admin_token: str
    proc: "subprocess.Popen[bytes]"
    honest_task: str
    cheat_task: str
    provider: str

    def rpc(self, method: str, params: Any = None) -> Any:
        return rpc(self.url, method, params)

    def log(self) -> str:
        try:
            return (self.data / "node.log").read_text(errors="replace")[-6000:]
        except OSError:
            return ""


def tb_cli(url: str, *args: str) -> List[Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TB_")}
    r = subprocess.run(
        [str(binary("tb-cli")), "--rpc", url, "--json", *args],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert r.returncode == 0, f"tb-cli {' '.join(args)}: {r.stderr}"
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    data = tmp_path_factory.mktemp("devnet")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TB_")}
    proc = subprocess.Popen(
        [
            str(binary("the-block")), "devnet", "--data-dir", str(data),
            "--rpc-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
            "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--block-interval-ms", "200",
            "--test-corrupt-op", str(CORRUPT_OP),
        ],
        stdin=subprocess.DEVNULL, stdout=(data / "node.log").open("wb"),
        stderr=subprocess.STDOUT, env=env,
    )
    log = lambda: (data / "node.log").read_text(errors="replace")[-6000:]  # noqa: E731
    try:
        info = wait_for("node.json", 60, lambda: _read_json(data / "node.json"), log)
        url = f"http://{info['rpc']}"
        keys = data / "dev-keys"
        alice = _address(keys / "devnet-alice.key")
        provider = _address(keys / "devnet-provider.key")
        wait_for("alice's funds", 120,
                 lambda: rpc(url, "balance", [alice])["industrial"] >= 20_000_000, log)

        def staked() -> bool:
            try:
                return int(rpc(url, "aicf.getProvider", [provider])["stake"]) >= 100_000_000
            except RuntimeError:
                return False

        wait_for("the provider's stake", 120, staked, log)
        jobs = tmp_path_factory.mktemp("jobs")
        for example in ("matmul-chain", "transformer"):
            subprocess.run(
                [str(binary("tb-cli")), "job", "build", "--example", example,
                 "-o", str(jobs / f"{example}.job")],
                check=True, capture_output=True, timeout=120,
            )
        key = str(keys / "devnet-alice.key")
        honest = tb_cli(url, "compute", "submit", str(jobs / "matmul-chain.job"), "--key", key,
                        "--max-price", "2", "--wait", "--timeout-secs", "240")
        assert honest[-1]["status"] == "final", honest
        cheat = tb_cli(url, "compute", "submit", str(jobs / "transformer.job"), "--key", key,
                       "--max-price", "2")
        tx = cheat[0]["tx_id"]

        def cheat_task() -> Any:
            try:
                return rpc(url, "compute.getJob", [tx])["task_id"]
            except RuntimeError:
                return None

        task = wait_for("the cheating job on chain", 60, cheat_task, log)
        wait_for("the cheater's slash", 180,
                 lambda: any(s["task_id"] == task for s in rpc(url, "aicf.slashes", [provider])),
                 log)
        yield Scene(
            data=data, url=url, metrics=str(info["metrics"]),
            admin_token=Path(info["admin_token_file"]).read_text().strip(), proc=proc,
            honest_task=honest[-1]["task_id"], cheat_task=task, provider=provider,
        )
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _read_json(p: Path) -> Any:
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def _address(key_file: Path) -> str:
    out = subprocess.run(
        [str(binary("tb-cli")), "--json", "key", "show", str(key_file)],
        check=True, capture_output=True, text=True, timeout=60,
    )
    return str(json.loads(out.stdout)["address"])
