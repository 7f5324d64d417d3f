"""The dashboard as a researcher uses it: Voila serving the notebook, real Chromium
driven by Playwright. Screenshots of every panel land in reports/screenshots/.

Kernels are counted in the process table (the Voila process's children): Voila serves
no list of its kernels.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

import ttg_lab
from ttg_lab.config import PROJECT_ROOT
from ttg_lab.dashboard import prepare_default, voila_command

CHROMIUM = "/usr/bin/chromium"
SHOTS = PROJECT_ROOT / "reports" / "screenshots"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

sync_api = (
    pytest.importorskip("playwright.sync_api")
    if not os.environ.get("CI")
    else __import__("playwright.sync_api", fromlist=["sync_playwright"])
)
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI must install chromium (see .ci/run)")
    pytest.skip("chromium is not installed", allow_module_level=True)

pytestmark = pytest.mark.slow

CULL_AFTER = 10
"""Seconds an unconnected idle kernel lives in these tests (300 in ``ttg-lab dashboard``)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A Voila serving the dashboard: its base URL, port and process."""

    url: str
    port: int
    pid: int
    db_url: str

    def kernels(self) -> list[psutil.Process]:
        return psutil.Process(self.pid).children()

    def waiting_for_a_page(self, kernel: psutil.Process) -> bool:
        """A pre-heated kernel that is ready waits for its page on Voila's query socket;
        (a dashboard that did not wait would instead have gone idle: CPU time still)."""
        try:
            if any(c.raddr and c.raddr.port == self.port for c in kernel.net_connections()):
                return True
            before = kernel.cpu_times()
            time.sleep(1.5)
            return bool(time.time() - kernel.create_time() > 5 and kernel.cpu_times() == before)
        except psutil.NoSuchProcess:
            return False

    def settle(self, timeout: float = 60) -> None:
        """Wait until only the pre-heated kernel is left, ready for a page."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            kernels = self.kernels()
            if len(kernels) == 1 and self.waiting_for_a_page(kernels[0]):
                return
            time.sleep(0.3)
        raise AssertionError(f"Voila did not settle: kernels {[k.pid for k in self.kernels()]}")


@contextmanager
def voila(url: str, folder: Path, **env: str) -> Iterator[Server]:
    """Voila serving the dashboard notebook on ``url``."""
    port = free_port()
    full_env = {**os.environ, "TTG_LAB_DB_URL": url, "TTG_LAB_STATE_DIR": str(folder), **env}
    log = (folder / "voila.log").open("w")
    process = subprocess.Popen(
        voila_command("127.0.0.1", port, None, cull_after=CULL_AFTER),
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(PROJECT_ROOT / "notebooks"),
    )
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(base + "api/status", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        yield Server(base, port, process.pid, url)
    finally:
        process.terminate()
        process.wait(20)


@pytest.fixture(scope="module")
def dashboard(template_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("dashboard")
    db = folder / "dash.db"
    shutil.copy(template_db, db)
    url = f"sqlite:///{db}"
    lab = ttg_lab.open(url)
    prepare_default(lab)
    lab.close()
    with voila(url, folder) as server:
        yield server


@pytest.fixture(scope="module")
def dashboard_url(dashboard: Server) -> str:
    return dashboard.url


@contextmanager
def browse(url: str) -> Iterator[Any]:
    """A Chromium page on the dashboard at ``url``, once its tabs have rendered."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(url, timeout=120_000)
        tab.wait_for_selector(".lm-TabBar-tabLabel >> text=Leaderboard", timeout=120_000)
        tab.errors = errors
        yield tab
        browser.close()


@pytest.fixture()
def page(dashboard_url: str) -> Iterator[Any]:
    with browse(dashboard_url) as tab:
        yield tab


def open_tab(page: Any, title: str) -> None:
    page.locator(".lm-TabBar-tabLabel", has_text=re.compile(f"^{title}$")).click()
    page.wait_for_timeout(300)


def field(page: Any, label: str) -> Any:
    return page.get_by_label(label, exact=True).filter(visible=True).first


def button(page: Any, name: str) -> Any:
    return page.get_by_role("button", name=name, exact=True).filter(visible=True).first


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_researcher_session(page: Any) -> None:
    assert "Traceback" not in page.content()
    shot(page, "dashboard")

    # create a model
    open_tab(page, "Models")
    field(page, "Name").fill("Browser Momentum")
    field(page, "Cash").fill("100000")
    field(page, "Cash").press("Tab")
    button(page, "Save").click()
    page.wait_for_selector("text=created browser-momentum", timeout=30_000)
    shot(page, "panel-models")

    # a bad form gives a clear message, not a traceback
    button(page, "New").click()
    field(page, "Name").fill("")
    button(page, "Save").click()
    page.wait_for_selector("text=name must not be empty", timeout=30_000)

    # start a run, watch it progress, stop it
    open_tab(page, "Run")
    button(page, "↻ models").click()
    field(page, "Model").select_option("browser-momentum")
    page.get_by_role("radio", name="intraday").filter(
        visible=True
    ).first.click() if page.get_by_role("radio", name="intraday").count() else page.locator(
        "button", has_text=re.compile("^intraday$")
    ).filter(visible=True).first.click()
    button(page, "Start").click()
    page.wait_for_selector("text=/step [1-9][0-9]*\\/174/", timeout=60_000)
    assert "[step]" in page.locator(".ttg-terminal").filter(visible=True).first.inner_text()
    shot(page, "panel-run")
    open_tab(page, "Monitor")
    page.wait_for_selector(".ttg-card >> text=equity", timeout=30_000)
    shot(page, "panel-monitor")
    open_tab(page, "Run")
    button(page, "Stop").click()
    page.wait_for_selector("text=/run \\d+: stopped/", timeout=60_000)
    label = page.locator("text=/run \\d+: stopped/").first.inner_text()
    done = int(re.search(r"step (\d+)/174", label).group(1))  # type: ignore[union-attr]
    assert 0 < done < 174

    # an imported GPT-5 run in the reasoning browser, filtered by type
    open_tab(page, "Reasoning")
    field(page, "Model").select_option("aitrader-gpt-5-us-hourly")
    page.wait_for_selector("text=/[0-9,]+ entries/", timeout=30_000)
    field(page, "Types").select_option(["decision"])
    button(page, "Filter").click()
    page.wait_for_timeout(1500)
    labels = page.locator(".ttg-card .label").filter(visible=True).all_inner_texts()
    assert labels and all("· decision ·" in text for text in labels)
    shot(page, "panel-reasoning")

    # the leaderboard lists imported LLM runs and the baselines
    open_tab(page, "Leaderboard")
    tables = page.locator(".ttg-table").filter(visible=True)
    tables.first.wait_for(timeout=30_000)
    board = "\n".join(tables.all_inner_texts())
    assert "aitrader-gpt-5-us-hourly" in board and "baseline-momentum" in board
    for column in ("n_runs", "n_steps", "holm_verdict", "psr", "dsr"):  # Step 5
        assert column in board, column
    groups = page.locator(".ttg-subtitle").filter(visible=True).all_inner_texts()
    assert "us daily 2025-06-10..2025-10-30 - benchmark QQQ" in groups  # a table per group
    shot(page, "panel-leaderboard")

    # an admin changes a user's role
    open_tab(page, "Admin")
    field(page, "Email").fill("bea@lab.test")
    field(page, "Name").fill("Bea")
    button(page, "Add user").click()
    page.wait_for_selector("text=added bea@lab.test as user", timeout=30_000)
    page.get_by_label("User", exact=True).filter(visible=True).first.select_option("bea")
    page.get_by_label("Role", exact=True).filter(visible=True).first.select_option("admin")
    button(page, "Change role").click()
    page.wait_for_selector("text=bea is now admin", timeout=30_000)
    shot(page, "panel-admin")

    for title in ("Performance", "Rules", "MCP", "Analyst"):
        open_tab(page, title)
        shot(page, f"panel-{title.lower()}")
    assert page.errors == []
    assert "Traceback" not in page.content()


def test_ask_the_analyst_and_follow_a_citation(page: Any) -> None:
    open_tab(page, "Analyst")
    select = field(page, "Run")
    label = next(
        o for o in select.locator("option").all_inner_texts() if "aitrader-gpt-5-crypto-daily" in o
    )
    select.select_option(label=label)
    page.wait_for_selector("text=offline analyst on run", timeout=30_000)
    page.get_by_placeholder("How did this run do, and why?").filter(visible=True).first.fill(
        "How did it do and why?"
    )
    button(page, "Ask").click()
    page.wait_for_selector("text=/returned -16.41%/", timeout=60_000)
    citations = page.locator("button.ttg-citation").filter(visible=True)
    citations.first.wait_for(timeout=30_000)
    trade = next(t for t in citations.all_inner_texts() if t.startswith("trade"))
    shot(page, "panel-analyst")
    page.get_by_role("button", name=trade, exact=True).filter(visible=True).first.click()
    day = page.locator("text=/^step \\d+ of \\d+: /").filter(visible=True).first
    day.wait_for(timeout=30_000)  # the day-by-day view of the cited trade
    current = page.locator(".lm-TabBar-tab.lm-mod-current").all_inner_texts()
    assert current[0] == "Reasoning" and "Day by day" in current
    shot(page, "analyst-citation")
    assert page.errors == []


def test_a_jupyterhub_user_sees_only_their_work_and_no_admin_tab(
    template_db: Path, tmp_path: Path
) -> None:
    db = tmp_path / "team.db"
    shutil.copy(template_db, db)
    url = f"sqlite:///{db}"
    admin = ttg_lab.open(url)
    theirs = admin.models.create("admin momentum", ai_model_id="baseline/momentum")
    admin.start_run(theirs, path="direct", background=False, end="2025-06-20")
    admin.users.add("bob@team.org", "Bob")
    bob = ttg_lab.open(url, user="bob")
    bob.models.create("bob momentum", ai_model_id="baseline/momentum")
    bob.close()
    admin.close()
    with voila(url, tmp_path, JUPYTERHUB_USER="bob") as server, browse(server.url) as page:
        assert "Bob (bob, user)" in page.content()
        tabs = page.locator(".lm-TabBar-tabLabel").all_inner_texts()
        assert "Leaderboard" in tabs and "Admin" not in tabs
        open_tab(page, "Models")
        models = page.locator(".ttg-table").filter(visible=True).first.inner_text()
        assert "bob-momentum" in models and "admin-momentum" not in models
        open_tab(page, "Reasoning")
        options = field(page, "Model").locator("option").all_inner_texts()
        assert "admin-momentum" not in options
        shot(page, "ordinary-user")
        assert page.errors == [] and "Traceback" not in page.content()


def test_a_page_shows_what_was_created_after_its_kernel_was_preheated(dashboard: Server) -> None:
    """Voila runs the dashboard in a kernel before anyone asks for a page: a model and run
    created since are in Models and on the Leaderboard of the page opened next."""
    dashboard.settle()
    lab = ttg_lab.open(dashboard.db_url)
    model = lab.models.create("After Preheat", ai_model_id="baseline/momentum")
    lab.start_run(model, path="direct", background=False, end="2025-07-31")
    lab.close()
    with browse(dashboard.url) as page:
        models = page.locator(".ttg-table").filter(visible=True).first.inner_text()
        assert "after-preheat" in models
        open_tab(page, "Leaderboard")
        leaderboard = page.locator(".ttg-table td", has_text="after-preheat")
        leaderboard.filter(visible=True).first.wait_for(timeout=30_000)
        assert page.errors == []


def test_reloaded_and_closed_pages_end_their_kernels(dashboard: Server) -> None:
    """Each reload ends the kernel of the page it replaces at once (Voila's shutdown is
    let in); a closed page's kernel ends too (Chromium sends nothing when a tab closes
    headless: Voila's culler ends a kernel with no page after CULL_AFTER seconds). After
    three reloads and a close only the pre-heated kernel is left."""
    dashboard.settle()
    counts = [len(dashboard.kernels())]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(dashboard.url, timeout=120_000)
        page.wait_for_selector(".lm-TabBar-tabLabel >> text=Leaderboard", timeout=120_000)
        for _ in range(3):
            before = {k.pid for k in dashboard.kernels()}
            started = time.time()
            page.reload(timeout=120_000)
            page.wait_for_selector(".lm-TabBar-tabLabel >> text=Leaderboard", timeout=120_000)
            while time.time() - started < 5 and before <= {k.pid for k in dashboard.kernels()}:
                time.sleep(0.2)
            ended = before - {k.pid for k in dashboard.kernels()}
            assert ended, (
                f"no kernel ended within 5 s of a reload (the culler waits {CULL_AFTER} s)"
            )
            counts.append(len(dashboard.kernels()))
        page.close(run_before_unload=True)
        deadline = time.time() + CULL_AFTER + 20
        while time.time() < deadline and len(dashboard.kernels()) > 1:
            time.sleep(0.5)
        counts.append(len(dashboard.kernels()))
        browser.close()
    print(f"kernels: at start, after each reload, after the close: {counts}")
    assert counts[-1] == 1, counts
