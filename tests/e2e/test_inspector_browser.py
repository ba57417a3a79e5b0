"""The inspector in a real browser: the system's headless Chromium, driven by
Selenium (skipped, saying why, without ``chromium`` and ``chromium-driver``)."""

from __future__ import annotations

import pytest

from api.testing import Server
from bench.inspector_screenshot import chat
from bench.inspector_screenshot import chromium
from bench.inspector_screenshot import headless
from bench.inspector_screenshot import open_conversation
from bench.inspector_screenshot import seed
from bench.inspector_screenshot import wait_for

pytestmark = pytest.mark.skipif(
    chromium() is None,
    reason="no headless browser: apt-get install chromium chromium-driver "
    "(.ci/run does)",
)


def test_pick_a_conversation_read_it_and_talk_to_the_bot(
    moodbot_model, redis_url, tmp_path
) -> None:
    with (
        Server(
            moodbot_model,
            redis_url,
            "inspect:",
            tmp_path,
            nlu=True,
            workers=2,
            extra=["--auth-token", "s3cret"],
        ) as server,
        headless() as driver,
    ):
        # the page is open, the data is not: it asks for a token
        driver.get(f"{server.url}/inspect")
        wait_for(driver, "#login:not([hidden])")
        # (the seed goes through the API with the token)
        seed(server.url, "ada", ("hello there",), token="s3cret")
        driver.find_element("id", "token").send_keys("s3cret")
        driver.find_element("css selector", "#login button").click()
        open_conversation(driver, server.url, "ada")
        user = wait_for(driver, "#timeline .event.user", "hello there")
        assert "greet" in user.text  # the intent, with its confidence
        assert "%" in user.text
        wait_for(driver, "#timeline .event.action", "utter_greet")
        wait_for(driver, "#timeline .event.bot", "Hey! How are you?")
        chat(driver, "I am very sad", "Here is something to cheer you up")
        wait_for(driver, "#timeline .event.user .intent", "mood_unhappy")
        wait_for(driver, "#timeline .event.action", "utter_did_that_help")
        assert not driver.find_element("id", "error").is_displayed()
