"""A screenshot of the conversation inspector for docs/operations.md, taken in the
system's headless Chromium (Debian's ``chromium`` and ``chromium-driver``: Selenium
is pointed at those binaries and never downloads a browser).

Starts ``dialogd serve`` with the moodbot model on a private Redis, plays a short
conversation through the API, opens ``/inspect``, picks the conversation, sends
the user's answer through the chat box and saves the page.

    python -m bench.inspector_screenshot [--out docs/figures/inspector.png]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from api.testing import Server
from bench.turn_latency import moodbot_model
from trackerstore import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
#: where Debian puts them (chromium, chromium-driver)
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVER = "chromedriver"
WAIT = 60.0


def chromium() -> tuple[str, str] | None:
    """The browser and its driver, when both are installed."""
    browser = next((p for p in map(shutil.which, BROWSERS) if p), None)
    driver = shutil.which(DRIVER)
    return (browser, driver) if browser and driver else None


@contextmanager
def headless(width: int = 1280, height: int = 800) -> Iterator[Any]:
    """A headless Chromium driven by Selenium, on the system's binaries."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = chromium()
    if found is None:
        raise RuntimeError(
            "no chromium and chromedriver: apt-get install chromium chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespaces for it
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        service=Service(executable_path=found[1]), options=options
    )
    try:
        yield driver
    finally:
        driver.quit()


def seed(url: str, cid: str, messages: tuple[str, ...], token: str = "") -> None:
    """Play ``messages`` as a client would: each action says the domain's first
    response of its name."""
    http = requests.Session()
    if token:
        http.headers["Authorization"] = f"Bearer {token}"

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = http.post(f"{url}/conversations/{cid}/{path}", json=body)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    templates = http.get(f"{url}/domain").json()["templates"]
    for message in messages:
        reply = post("parse", {"query": message})
        while reply["next_action"] not in (None, "action_listen"):
            action = reply["next_action"]
            text = (templates.get(action) or [{}])[0].get("text")
            events = [{"event": "bot", "text": text}] if text else []
            reply = post("continue", {"executed_action": action, "events": events})
    http.close()


def wait_for(driver: Any, css: str, text: str | None = None) -> Any:
    """The first element matching ``css`` (containing ``text``), once it shows."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d: Any) -> Any:
        for node in d.find_elements(By.CSS_SELECTOR, css):
            if text is None or text in node.text:
                return node
        return False

    # NOTE: the page redraws the timeline whole: an element found may be gone
    # before its text is read; then look again.
    return WebDriverWait(
        driver, WAIT, ignored_exceptions=(StaleElementReferenceException,)
    ).until(found)


def open_conversation(driver: Any, url: str, cid: str) -> None:
    driver.get(f"{url}/inspect")
    wait_for(driver, f'#conversations li[data-cid="{cid}"]').click()
    wait_for(driver, "#timeline .event.user")


def chat(driver: Any, text: str, expected_reply: str) -> None:
    """Send ``text`` with the chat box; wait for the bot's ``expected_reply``."""
    box = driver.find_element("id", "chat-input")
    box.send_keys(text)
    driver.find_element("id", "chat-send").click()
    wait_for(driver, "#timeline .event.user", text)
    wait_for(driver, "#timeline .event.bot", expected_reply)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default=str(ROOT / "docs" / "figures" / "inspector.png")
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedRedis(Path(tmp) / "redis") as redis,
    ):
        work = Path(tmp)
        with Server(moodbot_model(work), redis.url, "", work, nlu=True) as server:
            seed(server.url, "ada", ("hello there", "I am very sad"))
            seed(server.url, "bob", ("hi",))
            with headless() as driver:
                open_conversation(driver, server.url, "ada")
                chat(driver, "yes", "Great carry on!")
                driver.save_screenshot(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
