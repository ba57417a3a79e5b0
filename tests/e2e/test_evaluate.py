"""``POST /evaluate`` against a real server (Rasa Core 0.12-0.14): the original
tests' fixture stories, end to end, and invalid stories."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.conftest import FIXTURES

pytestmark = pytest.mark.e2e

KEYS = {
    "report",
    "precision",
    "f1",
    "accuracy",
    "actions",
    "in_training_data_fraction",
    "is_end_to_end_evaluation",
    "stories",
}


@pytest.fixture(scope="module")
def url(pair) -> str:
    return pair[0].url


def test_evaluate_fixture_stories(url):
    body = (FIXTURES / "stories_defaultdomain.md").read_text()
    reply = requests.post(f"{url}/evaluate", data=body, timeout=30)
    assert reply.status_code == 200
    result = reply.json()
    assert set(result) == KEYS
    assert result["is_end_to_end_evaluation"] is False
    assert set(result["actions"][0]) == {"action", "predicted", "confidence", "policy"}
    # The fixture model memorised these very stories.
    assert result["accuracy"] == 1.0
    assert result["in_training_data_fraction"] == 1.0
    assert result["actions"][0] == {
        "action": "utter_greet",
        "predicted": "utter_greet",
        "policy": "policy_0_AugmentedMemoizationPolicy",
        "confidence": 1.0,
    }
    assert "weighted avg" in result["report"]


def test_evaluate_scores_every_story(url):
    story = "* greet\n  - utter_greet\n"
    body = f"## one\n{story}\n## two\n{story}"
    reply = requests.post(f"{url}/evaluate", data=body, timeout=30)
    assert reply.status_code == 200
    result = reply.json()
    assert result["stories"] == {"total": 2, "distinct": 1}
    assert len(result["actions"]) == 4


def test_end_to_end_evaluation(url):
    body = (FIXTURES / "end_to_end_story.md").read_text()
    reply = requests.post(
        f"{url}/evaluate",
        params={"e2e": "true"},
        data=body,
        headers={"Content-Type": "text/markdown"},
        timeout=30,
    )
    assert reply.status_code == 200
    result = reply.json()
    assert set(result) == KEYS
    assert result["is_end_to_end_evaluation"] is True
    assert set(result["actions"][0]) == {"action", "predicted", "confidence", "policy"}
    assert result["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("body", "params"),
    [
        ("## s\n* greet\n  - utter_not_in_domain\n", {}),
        ("not a story line\n", {}),
        ("", {}),
        ("## s\n* greet\n  - utter_greet\n", {"e2e": "perhaps"}),
    ],
)
def test_invalid_stories_are_400(url, body, params):
    reply = requests.post(f"{url}/evaluate", data=body, params=params, timeout=30)
    assert reply.status_code == 400
    assert reply.json()["status"] == "failure"
