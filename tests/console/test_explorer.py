"""The block explorer in a real browser (headless Chromium through chromedriver)
against the devnet of ``conftest.Scene``: every page opens; the honest job's
timeline, receipt fields and result; the cheating job's challenge and ruling with
the losing op; the slash on the provider page; a live head update; clear pages for
bad input. Screenshots go to ``$TB_CONSOLE_SHOTS`` (default
``target/console-screenshots``)."""

from __future__ import annotations

import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from conftest import REPO, CORRUPT_OP, Scene

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = Path(os.environ.get("TB_CONSOLE_SHOTS", REPO / "target" / "console-screenshots"))
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Chromium or chromedriver is missing (Debian chromium, chromium-driver); "
                    ".ci/run installs them")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-quic", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--window-size=1280,1000"):
        opts.add_argument(a)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield d
    finally:
        d.quit()


class Page:
    def __init__(self, driver: object, scene: Scene) -> None:
        self.d = driver
        self.base = f"{scene.url}/explorer/"

    def open(self, route: str, shot: str) -> object:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        d = self.d
        d.get("about:blank")  # type: ignore[attr-defined]
        d.get(f"{self.base}#/{route}")  # type: ignore[attr-defined]
        WebDriverWait(d, 30).until(
            lambda x: x.find_element(By.ID, "app").get_attribute("aria-busy") == "false")
        d.save_screenshot(str(SHOTS / f"{shot}.png"))  # type: ignore[attr-defined]
        return d.find_element(By.ID, "app")  # type: ignore[attr-defined]

    def field(self, app: object, name: str) -> str:
        from selenium.webdriver.common.by import By
        return app.find_element(By.CSS_SELECTOR, f'dd[data-field="{name}"]').text  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def page(browser: object, scene: Scene) -> Page:
    return Page(browser, scene)


def test_overview_and_a_live_head(page: Page, scene: Scene) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    app = page.open("", "overview")
    assert int(app.find_element(By.ID, "stat-height").text.replace(",", "")) > 0  # type: ignore[attr-defined]
    for stat in ("stat-difficulty", "stat-hashrate", "stat-mempool", "stat-fund", "stat-leases"):
        assert app.find_element(By.ID, stat).text not in ("", "—"), stat  # type: ignore[attr-defined]
    live = page.d.find_element(By.ID, "live")  # type: ignore[attr-defined]
    WebDriverWait(page.d, 30).until(lambda _: live.get_attribute("data-height"))
    first = int(live.get_attribute("data-height"))
    WebDriverWait(page.d, 30).until(lambda _: int(live.get_attribute("data-height")) > first)
    top = app.find_element(By.CSS_SELECTOR, "#latest-blocks tbody tr td").text  # type: ignore[attr-defined]
    assert int(top.lstrip("#").replace(",", "")) > first, "the new head is the first row"
    page.d.save_screenshot(str(SHOTS / "overview-live.png"))  # type: ignore[attr-defined]


def test_blocks_a_block_and_a_transaction(page: Page, scene: Scene) -> None:
    from selenium.webdriver.common.by import By

    app = page.open("blocks", "blocks")
    assert len(app.find_elements(By.CSS_SELECTOR, "tbody tr")) == 25  # type: ignore[attr-defined]
    job = scene.rpc("compute.getJob", [scene.honest_task])
    app = page.open(f"block/{job['submitted']}", "block")
    assert page.field(app, "Height").replace(",", "") == str(job["submitted"])
    tx_link = app.find_element(By.CSS_SELECTOR, 'tbody a[href^="#/tx/"]')  # type: ignore[attr-defined]
    tx_id = tx_link.get_attribute("title")
    app = page.open(f"tx/{tx_id}", "transaction")
    assert page.field(app, "Id") == tx_id
    assert page.field(app, "Status") == "included"


def test_the_settled_job(page: Page, scene: Scene) -> None:
    from selenium.webdriver.common.by import By

    app = page.open(f"job/{scene.honest_task}", "job-settled")
    assert app.find_element(By.ID, "job-state").text in ("Verified", "Settled")  # type: ignore[attr-defined]
    kinds = [li.get_attribute("data-kind") for li in app.find_elements(By.CSS_SELECTOR, "#timeline li")]  # type: ignore[attr-defined]
    for k in ("submitted", "leased", "receipt", "window"):
        assert k in kinds, kinds
    assert kinds[0] == "submitted"
    receipt = scene.rpc("compute.getReceipt", [scene.honest_task])["receipts"][0]
    assert page.field(app, "kernel_variant_digest") == receipt["kernel_variant_digest"]
    assert HEX64.match(receipt["kernel_variant_digest"])
    assert page.field(app, "benchmark_commit") == receipt["benchmark_commit"]
    assert page.field(app, "trace_root") == receipt["trace_root"]
    assert "blocks" in page.field(app, "Latency")
    assert page.field(app, "Status") == "final"
    link = app.find_element(By.ID, "result-download")  # type: ignore[attr-defined]
    assert link.get_attribute("href").startswith("blob:")
    preview = app.find_element(By.CSS_SELECTOR, "code.preview").text  # type: ignore[attr-defined]
    assert re.match(r"^-?[0-9]", preview), preview


def test_the_cheating_job_challenge_and_ruling(page: Page, scene: Scene) -> None:
    from selenium.webdriver.common.by import By

    app = page.open(f"job/{scene.cheat_task}", "job-challenged")
    ops = [e.text for e in app.find_elements(By.CSS_SELECTOR, '[data-field="losing-op"]')]  # type: ignore[attr-defined]
    assert str(CORRUPT_OP) in ops, ops
    kinds = [li.get_attribute("data-kind") for li in app.find_elements(By.CSS_SELECTOR, "#timeline li")]  # type: ignore[attr-defined]
    assert "challenged" in kinds and "ruled" in kinds, kinds


def test_the_provider_and_its_slash(page: Page, scene: Scene) -> None:
    from selenium.webdriver.common.by import By

    app = page.open("providers", "providers")
    assert app.find_elements(By.CSS_SELECTOR, f'a[title="{scene.provider}"]')  # type: ignore[attr-defined]
    app = page.open(f"provider/{scene.provider}", "provider")
    rows = app.find_elements(By.CSS_SELECTOR, "#slashes tbody tr")  # type: ignore[attr-defined]
    assert rows, "the slash is listed"
    linked = [a.get_attribute("title") for a in app.find_elements(By.CSS_SELECTOR, '#slashes a[href^="#/job/"]')]  # type: ignore[attr-defined]
    assert scene.cheat_task in linked
    assert "LostDispute" in rows[0].text or any("LostDispute" in r.text for r in rows)
    assert page.field(app, "Success rate") != ""
    app = page.open(f"account/{scene.provider}", "account")
    assert page.field(app, "Address") == scene.provider


def test_lists_and_governance(page: Page, scene: Scene) -> None:
    from selenium.webdriver.common.by import By

    app = page.open("jobs", "jobs")
    listed = [a.get_attribute("title") for a in app.find_elements(By.CSS_SELECTOR, 'a[href^="#/job/"]')]  # type: ignore[attr-defined]
    assert scene.honest_task in listed and scene.cheat_task in listed
    app = page.open("epochs", "epochs")
    assert app.find_element(By.TAG_NAME, "h1").text == "Epochs"  # type: ignore[attr-defined]
    app = page.open("governance", "governance")
    assert "Every parameter is as at genesis." in app.text  # type: ignore[attr-defined]


@pytest.mark.parametrize("route, title", [
    ("job/zz", "Malformed job id"),
    ("job/" + "0" * 64, "Job not found"),
    ("tx/" + "0" * 64, "Transaction not found"),
    ("block/99999999", "Block not found"),
    ("block/not-a-block", "Malformed block reference"),
    ("blocks?page=999999999", "Page out of range"),
    ("blocks?page=99999999999999", "Page out of range"),
    ("jobs?page=-1", "Malformed page number"),
    ("jobs?state=Nope", "Malformed job state"),
    ("provider/tb1nope", "Malformed provider address"),
    ("account/%3Cscript%3E", "Malformed account"),
    ("nowhere", "No such page"),
])
def test_bad_input_gets_a_clear_page(page: Page, route: str, title: str) -> None:
    from selenium.webdriver.common.by import By

    app = page.open(route, "error-" + re.sub(r"[^a-z0-9]+", "-", route.lower())[:40])
    section = app.find_element(By.CSS_SELECTOR, "section.error")  # type: ignore[attr-defined]
    assert section.find_element(By.TAG_NAME, "h1").text == title


def test_the_server_never_answers_500(scene: Scene) -> None:
    for path, status in (("/explorer/", 200), ("/explorer/app.js", 200),
                         ("/explorer/nope", 404), ("/explorer/%2e%2e/etc/passwd", 404)):
        try:
            with urllib.request.urlopen(f"{scene.url}{path}", timeout=30) as r:
                got = r.status
                if status == 200:
                    assert "default-src 'none'" in r.headers["content-security-policy"]
        except urllib.error.HTTPError as e:
            got = e.code
            assert "stack" not in e.read().decode(errors="replace").lower()
        assert got == status, path


def test_a_phone_width(page: Page, scene: Scene) -> None:
    page.d.set_window_size(390, 844)  # type: ignore[attr-defined]
    try:
        for route in ("", f"job/{scene.honest_task}", f"provider/{scene.provider}", "blocks"):
            page.open(route, "phone-" + (route.split("/")[0] or "overview"))
            overflow = page.d.execute_script(  # type: ignore[attr-defined]
                "return document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"#/{route} is {overflow} px wider than a phone"
    finally:
        page.d.set_window_size(1280, 1000)  # type: ignore[attr-defined]
