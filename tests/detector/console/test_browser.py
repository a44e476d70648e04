"""The console in a real headless browser (Debian's chromium, driven by Selenium through
chromedriver): log in, open a rig, confirm it, see the status change; a wrong secret is
refused and a police identity gets 403.

Skipped with its reason when chromium or chromedriver is absent, except under CI (the
environment variable CI set), where that is a failure: .ci/run installs both. Screenshots
of every page go to $GOIPWATCH_SCREENSHOTS when set.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest
from aiohttp import web

from detector.api import make_app
from tests.detector.console.conftest import (
    ANALYST_ID,
    ANALYST_SECRET,
    POLICE_ID,
    POLICE_SECRET,
    RIG,
    SIMS,
    add_verification,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1000")


def _browser_or_skip():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        why = f"the browser test needs {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(f"{why}; .ci/run installs chromium and chromium-driver")
        pytest.skip(why)


def test_a_missing_browser_skips_locally_and_fails_under_ci(monkeypatch):
    import tests.detector.console.test_browser as me
    monkeypatch.setattr(me, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="/nonexistent/chromium"):
        _browser_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="installs chromium and chromium-driver"):
        _browser_or_skip()


@pytest.fixture
def browser(tmp_path, monkeypatch):
    _browser_or_skip()
    monkeypatch.setenv("SE_OFFLINE", "true")     # Selenium Manager must never download
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
async def base_url(pool, api_config):
    runner = web.AppRunner(make_app(pool, api_config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


class Page:
    """The browser's calls, run in a thread so the event loop keeps serving the app."""

    def __init__(self, driver, base: str, shots: Path) -> None:
        self.driver, self.base, self.shots = driver, base, shots

    async def do(self, fn, *args):
        return await asyncio.to_thread(fn, *args)

    async def open(self, path: str) -> None:
        await self.do(self.driver.get, self.base + path)

    async def find(self, css: str):
        from selenium.webdriver.common.by import By
        return await self.do(self.driver.find_element, By.CSS_SELECTOR, css)

    async def text(self, css: str) -> str:
        """The element's text, found again when the page replaced it between the find and
        the read (a loaded machine can still be settling the page the click led to)."""
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.common.by import By

        def read() -> str:
            for attempt in range(5):
                try:
                    return self.driver.find_element(By.CSS_SELECTOR, css).text
                except WebDriverException:
                    if attempt == 4:
                        raise
                    time.sleep(0.2)
            raise AssertionError("unreachable")

        return await self.do(read)

    async def type(self, css: str, value: str) -> None:
        el = await self.find(css)
        await self.do(el.clear)
        await self.do(el.send_keys, value)

    async def click(self, css: str) -> None:
        """Click what submits a form or follows a link, and wait for the next page (a click
        returns before the navigation it starts)."""
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        def go() -> None:
            old = self.driver.find_element(By.TAG_NAME, "html")
            self.driver.find_element(By.CSS_SELECTOR, css).click()

            def left(_) -> bool:
                # the old page is gone; mid-navigation chromedriver may say so as "does not
                # belong to the document" instead of a stale-element error
                try:
                    old.is_enabled()
                    return False
                except StaleElementReferenceException:
                    return True
                except WebDriverException as e:
                    if "belong to the document" in str(e):
                        return True
                    raise

            wait = WebDriverWait(self.driver, 30)
            wait.until(left)
            wait.until(lambda d: d.execute_script("return document.readyState") == "complete")

        await self.do(go)

    async def path(self) -> str:
        url = await self.do(lambda: self.driver.current_url)
        return url.removeprefix(self.base).split("?")[0]

    async def shot(self, name: str) -> None:
        self.shots.mkdir(parents=True, exist_ok=True)
        height = await self.do(self.driver.execute_script,
                               "return document.documentElement.scrollHeight")
        await self.do(self.driver.set_window_size, 1280, min(max(int(height), 600), 4000))
        await self.do(self.driver.save_screenshot, str(self.shots / f"{name}.png"))

    async def login(self, client_id: str, secret: str) -> None:
        await self.open("/console/login")
        await self.type("#client_id", client_id)
        await self.type("#secret", secret)
        await self.click("#login")


@pytest.fixture
def page(browser, base_url, tmp_path) -> Page:
    shots = Path(os.environ.get("GOIPWATCH_SCREENSHOTS") or tmp_path / "shots")
    return Page(browser, base_url, shots)


async def test_analyst_logs_in_opens_a_rig_and_confirms_it(page, pool):
    await add_verification(pool)
    await page.login(ANALYST_ID, "wrong-secret")
    assert await page.path() == "/console/login"
    assert "unknown client or wrong secret" in await page.text("#login-error")
    await page.shot("login-refused")

    await page.login(ANALYST_ID, ANALYST_SECRET)
    assert await page.path() == "/console/rigs"
    row = await page.text(f'tr[data-rig="{RIG.id}"]')
    assert "open" in row and "0.95" in row
    await page.shot("rigs")

    await page.click(f'tr[data-rig="{RIG.id}"] a')
    assert await page.path() == f"/console/rigs/{RIG.id}"
    assert await page.text("#rig-status") == "open"
    # activity by event time, activity by wall clock, cells by hour
    assert len(await page.do(page.driver.find_elements, "css selector", "svg.chart")) == 3
    await page.shot("rig")

    await page.type('input[name="note"]', "seen at the site")
    await page.click("#confirm-rig")
    assert await page.path() == f"/console/rigs/{RIG.id}"
    assert await page.text("#rig-status") == "confirmed"
    assert "confirmed" in await page.text("#sims")
    await page.shot("rig-confirmed")
    assert {r["status"] for r in await pool.fetch("SELECT status FROM flags")} == {"confirmed"}

    await page.click(f'#sims a[href="/console/sims/{SIMS[0]}"]')
    assert await page.text("#sim-status") == "confirmed"
    assert "verification_failed" in await page.text("#events")
    await page.shot("sim")
    await page.open("/console/outbox")
    assert "HTTP 503 <script>" in await page.text("#dead")      # shown as text
    await page.shot("outbox")
    await page.open(f"/console/sims/{SIMS[1]}")
    await page.type('input[name="reason"]', "IoT meter of Acme")
    await page.click("#allow-sim")
    assert await page.path() == "/console/allowlist"
    assert SIMS[1] in await page.text("#allowlist")
    await page.shot("allowlist")
    await page.click("#logout")
    assert await page.path() == "/console/login"
    console_log = await page.do(page.driver.get_log, "browser")
    assert not [e for e in console_log if "Content Security Policy" in e["message"]], console_log
    actions = [r["action"] for r in await pool.fetch("SELECT action FROM audit_log ORDER BY seq")]
    assert actions == ["console.login", "console.login", "console.rigs", "console.rig",
                       "console.rig_verdict", "console.rig", "console.sim", "console.outbox",
                       "console.sim", "console.allowlist_add", "console.allowlist",
                       "console.logout"]


async def test_police_identity_is_refused(page, pool):
    await page.login(POLICE_ID, POLICE_SECRET)
    assert "may not use the analysts' console" in await page.text("#problem")
    await page.shot("police-403")
    await page.open("/console/rigs")
    assert await page.path() == "/console/login"      # no session was opened
