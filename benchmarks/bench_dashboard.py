"""Dashboard speed, measured in real Chromium against Voila:

- from `ttg-lab dashboard` start to the first full render (target < 5 s) on an
  embedded store that is already prepared, and on a brand-new one (first start);
- first render with 1,000 runs and 1,000,000 reasoning entries in the store (< 5 s);
- reasoning search over those 1M entries (target < 300 ms), within a run and across all;
- a session on a pre-heated kernel: page open to first full render, opening a tab (its
  panel reads the store), and the kernels left after three reloads and leaving the page.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import psutil
from sqlalchemy import insert

import ttg_lab
from ttg_lab.engine.stored_reasoning import search_reasoning
from ttg_lab.store.schema import ReasoningEntry, TradingModel, TradingRun

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_to_render(db_url: str) -> float:
    """Seconds from starting `ttg-lab dashboard` to the dashboard drawn in Chromium."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "TTG_LAB_DB_URL": db_url}
    cli = str(Path(sys.executable).parent / "ttg-lab")
    start = time.perf_counter()
    process = subprocess.Popen(
        [cli, "dashboard", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        while True:
            try:
                if httpx.get(url + "api/status", timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            page.goto(url, timeout=120_000)
            page.wait_for_selector(".lm-TabBar-tabLabel >> text=Leaderboard", timeout=120_000)
            page.wait_for_selector(".ttg-table", timeout=120_000)
            elapsed = time.perf_counter() - start
            browser.close()
        return elapsed
    finally:
        process.terminate()
        process.wait(20)


def kernels(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The dashboard's kernels: the Voila process's children, from the process table."""
    found = []
    for child in psutil.Process(process.pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if "ipykernel_launcher" in " ".join(child.cmdline()):
                found.append(child)
    return found


def preheated(process: subprocess.Popen[bytes], port: int) -> bool:
    """A kernel is pre-heated and waiting for its page on Voila's query socket."""
    for kernel in kernels(process):
        with contextlib.suppress(psutil.NoSuchProcess):
            if any(c.raddr and c.raddr.port == port for c in kernel.net_connections()):
                return True
    return False


def page_session(db_url: str) -> None:
    """Open a page on a pre-heated kernel, open two tabs, reload three times, leave."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    cli = str(Path(sys.executable).parent / "ttg-lab")
    process = subprocess.Popen(
        [cli, "dashboard", "--port", str(port)],
        env={**os.environ, "TTG_LAB_DB_URL": db_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tabs = ".lm-TabBar-tabLabel"
    try:
        while not preheated(process, port):
            time.sleep(0.1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            start = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
            page.wait_for_selector(".ttg-table", timeout=120_000)
            elapsed = time.perf_counter() - start
            print(f"page open to first full render, pre-heated kernel: {elapsed:.2f} s")
            for label in ("first", "second"):
                for title in ("Leaderboard", "Models"):
                    start = time.perf_counter()
                    page.locator(tabs, has_text=title).click()
                    page.locator(".ttg-table").filter(visible=True).first.wait_for()
                    if title == "Leaderboard":
                        ms = (time.perf_counter() - start) * 1000
                        print(f"opening the Leaderboard tab ({label} time): {ms:.0f} ms")
            counts = [len(kernels(process))]
            for _ in range(3):
                page.reload(timeout=120_000)
                page.wait_for_selector(".ttg-table", timeout=120_000)
                time.sleep(1.5)
                counts.append(len(kernels(process)))
            page.goto("about:blank")  # the user leaves the page
            time.sleep(3)
            counts.append(len(kernels(process)))
            memory = sum(k.memory_info().rss for k in kernels(process)) / 1e6
            browser.close()
        print(
            f"kernels after open, each of 3 reloads, leaving: {counts} "
            f"(one is the pre-heated kernel for the next page; {memory:.0f} MB in all)"
        )
    finally:
        process.terminate()
        process.wait(20)


def fill_store(db_url: str, runs: int = 1000, entries: int = 1_000_000) -> int:
    """1,000 runs holding 1M entries whose text is resampled from the imported AI-Trader
    reasoning (real vocabulary, real word frequencies)."""
    lab = ttg_lab.open(db_url)
    rng = random.Random(0)
    corpus, _ = search_reasoning(lab.store, limit=1000)
    sentences = [
        s.strip() for text in corpus["content"] for s in text.split(".") if len(s.strip()) > 20
    ]
    with lab.store.session() as session:
        model = TradingModel(
            owner_id=lab.user.id,
            name="bulk",
            signature="bench-bulk",
            market="us",
            initial_cash=100_000.0,
            ai_model_id="baseline/random",
        )
        session.add(model)
        session.flush()
        run_rows = [
            TradingRun(
                model_id=model.id,
                run_number=i + 1,
                status="completed",
                mode="daily",
                period_start=datetime(2025, 6, 10),
                period_end=datetime(2025, 10, 30),
            )
            for i in range(runs)
        ]
        session.add_all(run_rows)
        session.flush()
        run_ids = [r.id for r in run_rows]
    per_run = entries // runs
    base = datetime(2025, 6, 10)
    batch: list[dict[str, object]] = []
    for run_id in run_ids:
        for k in range(per_run):
            text = ". ".join(rng.choice(sentences) for _ in range(3))
            batch.append(
                {
                    "run_id": run_id,
                    "step_index": k // 10,
                    "ts": base + timedelta(days=k // 10),
                    "type": ("plan", "analysis", "decision", "reflection")[k % 4],
                    "content": text,
                    "context": {},
                    "order_ids": [],
                }
            )
        if len(batch) >= 50_000:
            with lab.store.session() as session:
                session.execute(insert(ReasoningEntry), batch)
            batch = []
    if batch:
        with lab.store.session() as session:
            session.execute(insert(ReasoningEntry), batch)
    lab.close()
    return run_ids[len(run_ids) // 2]


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="ttg-dash-"))
    fresh = f"sqlite:///{folder / 'fresh.db'}"
    print(
        f"first start (empty store: data, 26 AI-Trader runs, 6 baseline runs): "
        f"{time_to_render(fresh):.1f} s"
    )
    print(
        f"start to first full render, prepared store: {time_to_render(fresh):.1f} s (target < 5 s)"
    )
    page_session(fresh)

    big = folder / "big.db"
    shutil.copy(folder / "fresh.db", big)
    big_url = f"sqlite:///{big}"
    start = time.perf_counter()
    some_run = fill_store(big_url)
    print(
        f"(filled 1,000 runs and 1,000,000 reasoning entries in "
        f"{time.perf_counter() - start:.0f} s)"
    )
    print(
        f"start to first full render with 1,000 runs and 1M entries: "
        f"{time_to_render(big_url):.1f} s (target < 5 s)"
    )

    lab = ttg_lab.open(big_url)
    for label, kwargs in (("within one run", {"run_id": some_run}), ("across all 1M entries", {})):
        samples = []
        for word in ("nvidia earnings", "tariff", "rebalance", "stop loss", "nothing-matches"):
            t = time.perf_counter()
            search_reasoning(lab.store, text=word, limit=25, **kwargs)  # type: ignore[arg-type]
            samples.append(time.perf_counter() - t)
        samples.sort()
        print(
            f"reasoning search {label}: median {samples[2] * 1000:.0f} ms, "
            f"worst {samples[-1] * 1000:.0f} ms (target < 300 ms)"
        )


if __name__ == "__main__":
    main()
