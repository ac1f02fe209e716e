"""The dashboards and alert rules against the node and a real Prometheus: promtool
accepts the config and the rules; no panel or rule names a metric the node does not
export, and every exported metric is on a panel or listed as unpaneled; Prometheus
scrapes the devnet and every dashboard query returns data; stopping the miner fires
TbNoNewBlock."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Set

import pytest
import yaml

from conftest import REPO, Scene

ETC = REPO / "etc"
DASHBOARDS = sorted((ETC / "grafana" / "dashboards").glob("*.json"))
RULES = ETC / "prometheus" / "alerts.yml"
CONFIG = ETC / "prometheus" / "prometheus.yml"
UNPANELED = ETC / "grafana" / "unpaneled-metrics.txt"

# Words of PromQL that are not metric names.
KEYWORDS = {"by", "without", "and", "or", "unless", "on", "ignoring", "bool", "offset",
            "group_left", "group_right", "inf", "nan", "le"}
# Series Prometheus makes itself.
PROMETHEUS_SERIES = {"up"}


def panel_queries() -> Dict[str, str]:
    """Every panel target's expression, keyed by where it is."""
    out = {}
    for f in DASHBOARDS:
        d = json.loads(f.read_text())
        for p in d["panels"]:
            for t in p.get("targets", []):
                out[f"{f.name}: {p['title']} [{t['refId']}]"] = t["expr"]
    return out


def rule_queries() -> Dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {f"alert {r['alert']}": r["expr"] for g in groups for r in g["rules"]}


def metric_names(expr: str) -> Set[str]:
    """The metric names a PromQL expression reads: identifiers outside label
    matchers, grouping clauses and durations that are not functions or keywords."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        word = m.group(0)
        rest = e[m.end():].lstrip()
        if rest.startswith("(") or word in KEYWORDS:
            continue
        if m.start() > 0 and (e[m.start() - 1].isdigit() or e[m.start() - 1] == "."):
            continue  # the exponent of a number such as 1e6
        names.add(word)
    return names


def exported(scene: Scene) -> Dict[str, str]:
    """Every metric the node's /metrics declares, with its type."""
    with urllib.request.urlopen(f"http://{scene.metrics}/metrics", timeout=30) as r:
        text = r.read().decode()
    return {m.group(1): m.group(2) for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.M)}


def base_name(name: str, types: Dict[str, str]) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) == "histogram":
            return name[: -len(suffix)]
    return name


def unpaneled() -> Dict[str, str]:
    out = {}
    for line in UNPANELED.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, why = line.partition(" ")
            assert why.strip(), f"{UNPANELED.name}: {name} needs a reason"
            out[name] = why.strip()
    return out


def test_the_parser_reads_names_not_functions_or_labels() -> None:
    assert metric_names('histogram_quantile(0.9, sum by (le, lane) (rate(tb_x_bucket{a="b"}[5m])))') == {"tb_x_bucket"}
    assert metric_names("sum(rate(tb_a_total[1h])) * 3600 / 1e6") == {"tb_a_total"}
    assert metric_names("time() - tb_t > 30 * tb_u") == {"tb_t", "tb_u"}
    assert metric_names('up{job="the-block"} == 0 and on(instance) tb_v') == {"up", "tb_v"}


def test_promtool_accepts_the_config_and_the_rules() -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian package prometheus); .ci/run installs it")
    for args in (["check", "config", str(CONFIG)], ["check", "rules", str(RULES)]):
        r = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"promtool {' '.join(args)}:\n{r.stdout}{r.stderr}"


def test_no_orphans(scene: Scene) -> None:
    types = exported(scene)
    assert len(DASHBOARDS) == 5, DASHBOARDS
    queries = {**panel_queries(), **rule_queries()}
    used: Set[str] = set()
    for where, expr in queries.items():
        for name in metric_names(expr):
            if name in PROMETHEUS_SERIES:
                continue
            base = base_name(name, types)
            assert base in types, f"{where}: {expr!r} reads {name}, which the node does not export"
            used.add(base)
    skipped = unpaneled()
    for name in skipped:
        assert name in types, f"{UNPANELED.name} lists {name}, which the node does not export"
    orphans = sorted(set(types) - used - set(skipped))
    assert not orphans, f"exported but on no panel nor in {UNPANELED.name}: {orphans}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, scene: Scene, work: Path) -> None:
        """The committed config and rules, with the devnet as the target and 1 s
        intervals (the only changes), on a free port."""
        cfg = yaml.safe_load(CONFIG.read_text())
        cfg["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        cfg["rule_files"] = [str(RULES)]
        cfg["scrape_configs"][0]["static_configs"] = [{"targets": [scene.metrics]}]
        (work / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = work / "prometheus.log"
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={work / 'prometheus.yml'}",
             f"--storage.tsdb.path={work / 'data'}",
             f"--web.listen-address={self.url.removeprefix('http://')}"],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
        )

    def api(self, path: str, **params: str) -> Any:
        q = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{q}", timeout=30) as r:
            answer = json.loads(r.read())
        assert answer["status"] == "success", answer
        return answer["data"]

    def wait(self, what: str, limit: float, check: Any) -> Any:
        t0 = time.monotonic()
        while True:
            try:
                got = check()
            except OSError:
                got = None
            if got:
                return got
            if self.proc.poll() is not None or time.monotonic() - t0 > limit:
                raise AssertionError(f"no {what} after {limit} s:\n{self.log.read_text()[-4000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def prometheus(scene: Scene, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (Debian package prometheus); .ci/run installs it")
    p = Prometheus(scene, tmp_path_factory.mktemp("prometheus"))
    try:
        yield p
    finally:
        p.stop()


def test_every_dashboard_query_returns_data(scene: Scene, prometheus: Prometheus) -> None:
    prometheus.wait("a healthy scrape", 60, lambda: any(
        t["health"] == "up" for t in prometheus.api("targets")["activeTargets"]))
    # Rates need two samples in their window.
    prometheus.wait("a few scrapes", 60,
                    lambda: prometheus.api("query", query="count_over_time(tb_block_height[1m]) >= 5")["result"])
    empty: List[str] = []
    for where, expr in panel_queries().items():
        data = prometheus.api("query", query=expr)
        if not data["result"]:
            empty.append(f"{where}: {expr}")
    assert not empty, "queries with no data:\n" + "\n".join(empty)


def test_stopping_the_miner_fires_no_new_block(scene: Scene, prometheus: Prometheus) -> None:
    prometheus.wait("the rules loaded", 60, lambda: prometheus.api("rules")["groups"])
    req = urllib.request.Request(
        scene.url,
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "stop_mining", "params": []}).encode(),
        {"content-type": "application/json", "authorization": f"Bearer {scene.admin_token}"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert "error" not in json.loads(r.read())
    try:
        def firing() -> bool:
            return any(a["labels"]["alertname"] == "TbNoNewBlock" and a["state"] == "firing"
                       for a in prometheus.api("alerts")["alerts"])

        # 30 block-time targets (1 s on the devnet) and an evaluation.
        prometheus.wait("TbNoNewBlock firing", 90, firing)
    finally:
        req.data = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "start_mining", "params": []}).encode()
        with urllib.request.urlopen(req, timeout=30) as r:
            assert "error" not in json.loads(r.read())
