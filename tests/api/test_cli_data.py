"""``dialogd data validate`` and ``dialogd data convert``, in-process."""

from __future__ import annotations

import shutil

import pytest

from api.cli import main
from tests.data import RASA_EXAMPLES
from tests.data import ROOT
from worker.nlu import load_nlu_data
from worker.validate import validate

RASA_INIT = ROOT / "tests" / "fixtures" / "rasa_init"
MOODBOT = RASA_EXAMPLES / "moodbot"


@pytest.fixture
def project(tmp_path, monkeypatch):
    folder = tmp_path / "bot"
    shutil.copytree(RASA_INIT, folder)
    monkeypatch.chdir(folder)
    return folder


def append(path, text: str) -> None:
    path.write_text(path.read_text() + text)


def test_a_consistent_project_validates(project, capsys):
    assert main(["data", "validate"]) == 0
    assert capsys.readouterr().out == "0 errors, 0 warnings\n"


def test_names_the_data_uses_but_the_domain_lacks_are_errors(project, capsys):
    append(
        project / "data" / "nlu.yml",
        "\n- intent: ask_weather\n  examples: |\n    - what's the weather\n"
        "    - hello\n",
    )
    append(
        project / "data" / "stories.yml",
        "\n- story: weather\n  steps:\n  - intent: ask_weather\n"
        "  - action: utter_weather\n  - action: action_fetch_weather\n"
        "  - slot_was_set:\n    - city: Paris\n  - active_loop: weather_form\n",
    )
    assert main(["data", "validate"]) == 1
    out = capsys.readouterr().out.splitlines()
    where = "data/stories.yml: weather"
    assert out == [
        f"error: 'utter_weather' is used in {where} but the domain has no "
        "response for it",
        f"error: action 'action_fetch_weather' is used in {where} but is not in "
        "the domain",
        f"error: form 'weather_form' is used in {where} but is not in the domain",
        "error: intent 'ask_weather' has NLU examples but is not in the domain",
        f"error: intent 'ask_weather' is used in {where} but is not in the domain",
        f"error: slot 'city' is set in {where} but is not in the domain",
        "warning: the example 'hello' is listed under several intents: "
        "ask_weather, greet",
        "6 errors, 1 warnings",
    ]


def test_stories_and_rules_that_disagree_are_errors(project, capsys):
    append(
        project / "data" / "stories.yml",
        "\n- story: rude goodbye\n  steps:\n  - intent: goodbye\n"
        "  - action: utter_happy\n"
        "\n- story: greet differently\n  steps:\n  - intent: greet\n"
        "  - action: utter_happy\n",
    )
    assert main(["data", "validate"]) == 1
    out = capsys.readouterr().out
    assert (
        "rule 'Say goodbye anytime the user says goodbye' predicts 'utter_goodbye' "
        "where story 'rude goodbye' has 'utter_happy'" in out
    )
    assert (
        "stories 'happy path' and 'greet differently' take 'utter_greet' and "
        "'utter_happy' after the same 5 turns" in out
    )


def test_unused_names_are_warnings(project, capsys):
    domain = project / "domain.yml"
    domain.write_text(
        domain.read_text()
        .replace("intents:\n", "intents:\n  - ask_time\n", 1)
        .replace("responses:\n", "responses:\n  utter_unused:\n  - text: never\n", 1)
    )
    issues = validate(domain, project / "data")
    assert [(i.level, i.message) for i in issues] == [
        ("warning", "intent 'ask_time' is in the domain but has no NLU examples"),
        ("warning", "intent 'ask_time' is not used in any story or rule"),
        ("warning", "response 'utter_unused' is not used in any story or rule"),
    ]
    assert main(["data", "validate"]) == 0
    assert main(["data", "validate", "--fail-on-warnings"]) == 1


def test_convert_markdown_to_yaml_and_back(tmp_path, capsys):
    assert (
        main(
            [
                "data",
                "convert",
                "nlu",
                "--data",
                str(MOODBOT / "data" / "nlu.md"),
                "--out",
                str(tmp_path),
                "-f",
                "yaml",
            ]
        )
        == 0
    )
    converted = tmp_path / "nlu_converted.yml"
    before = load_nlu_data(MOODBOT / "data" / "nlu.md")
    assert load_nlu_data(converted).examples == before.examples

    stories = tmp_path / "stories.yml"
    args = [
        "data",
        "convert",
        "core",
        "--data",
        str(MOODBOT / "data" / "stories.md"),
        "-d",
        str(MOODBOT / "domain.yml"),
        "--out",
        str(stories),
    ]
    assert main(args) == 0
    assert "- story: happy path\n  steps:\n  - intent: greet\n" in stories.read_text()
    assert main(args) == 1
    assert "exists: not overwritten" in capsys.readouterr().err
    back = tmp_path / "stories.md"
    assert main([*args[:4], str(stories), *args[5:8], str(back), "-f", "md"]) == 0
    assert back.read_text().startswith("## happy path\n* greet\n  - utter_greet\n")
