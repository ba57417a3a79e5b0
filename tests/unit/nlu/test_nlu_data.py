"""Readers for Rasa NLU training data: JSON, Markdown, folders, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.data import RASA_EXAMPLES
from tests.data import SNIPS_SLICE
from tests.data import dataset
from worker.errors import TrainingDataError
from worker.nlu import Example
from worker.nlu import load_nlu_data

MOODBOT = RASA_EXAMPLES / "moodbot" / "data" / "nlu.md"

MARKDOWN = """\
<!-- a comment
   over two lines, with - a fake item -->
## intent:restaurant_search
- show me [chinese](cuisine) restaurants
* i want [chines](cuisine:chinese) food in [New York](city) <!-- inline -->
+ [two](num_people:2) people

## intent:greet
- hey

## synonym:vegetarian
- veggie
- Vegg

## regex:zipcode
- [0-9]{5}

## lookup:city
- Berlin
- Paris
cities.txt
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_moodbot_markdown() -> None:
    data = load_nlu_data(MOODBOT)
    assert len(data.examples) == 63
    assert data.intents == [
        "goodbye",
        "greet",
        "mood_affirm",
        "mood_deny",
        "mood_great",
        "mood_unhappy",
    ]
    assert data.examples[0] == Example("hey", "greet", ())


def _offsets_match_values(path: Path, examples: int) -> None:
    data = load_nlu_data(path)
    assert len(data.examples) == examples
    assert len(data.intents) == 7
    for example in data.examples:
        for entity in example.entities:
            assert example.text[entity["start"] : entity["end"]] == entity["value"]


def test_snips_json_offsets_match_values() -> None:
    _offsets_match_values(SNIPS_SLICE / "train.json", 420)


@pytest.mark.data("snips")
def test_whole_snips_json_offsets_match_values() -> None:
    _offsets_match_values(dataset("snips") / "rasa" / "train.json", 13084)


def test_markdown_sections_annotations_and_comments(tmp_path: Path) -> None:
    _write(tmp_path / "cities.txt", "Hamburg\n\n  Rome \nParis\n")
    data = load_nlu_data(_write(tmp_path / "nlu.md", MARKDOWN), lookup_files=True)
    first, second, third, greet = data.examples
    assert first.text == "show me chinese restaurants"
    assert first.entities == (
        {"start": 8, "end": 15, "value": "chinese", "entity": "cuisine"},
    )
    assert second.text == "i want chines food in New York"
    assert [(e["start"], e["end"], e["value"]) for e in second.entities] == [
        (7, 13, "chinese"),
        (22, 30, "New York"),
    ]
    assert third.entities[0]["value"] == "2"
    assert greet == Example("hey", "greet", ())
    assert data.synonyms == {
        "chines": "chinese",
        "two": "2",
        "veggie": "vegetarian",
        "vegg": "vegetarian",
    }
    assert data.regex_features == (("zipcode", "[0-9]{5}"),)
    assert data.lookup_tables == (("city", ("Berlin", "Paris", "Hamburg", "Rome")),)


def test_json_all_sections(tmp_path: Path) -> None:
    _write(tmp_path / "drinks.txt", "tea\ncoffee\n")
    doc = {
        "rasa_nlu_data": {
            "common_examples": [
                {
                    "text": "show me chines restaurants",
                    "intent": "search",
                    "entities": [
                        {"start": 8, "end": 14, "value": "chinese", "entity": "cuisine"}
                    ],
                },
            ],
            "intent_examples": [{"text": "hello", "intent": "greet"}],
            "entity_examples": [
                {
                    "text": "berlin",
                    "entities": [{"start": 0, "end": 6, "entity": "city"}],
                }
            ],
            "entity_synonyms": [{"value": "vegetarian", "synonyms": ["Veggie"]}],
            "regex_features": [{"name": "zip", "pattern": "[0-9]{5}"}],
            "lookup_tables": [
                {"name": "drink", "elements": "drinks.txt"},
                {"name": "city", "elements": ["Berlin"]},
            ],
        }
    }
    data = load_nlu_data(
        _write(tmp_path / "nlu.json", json.dumps(doc)), lookup_files=True
    )
    assert [ex.intent for ex in data.examples] == ["search", "greet", None]
    assert data.examples[2].entities[0]["value"] == "berlin"
    assert data.synonyms == {"chines": "chinese", "veggie": "vegetarian"}
    assert data.regex_features == (("zip", "[0-9]{5}"),)
    assert data.lookup_tables == (("drink", ("tea", "coffee")), ("city", ("Berlin",)))


def test_folder_merges_recursively_and_skips_non_nlu(tmp_path: Path) -> None:
    _write(tmp_path / "cities.txt", "Rome\n")
    _write(tmp_path / "a.md", MARKDOWN)
    (tmp_path / "sub").mkdir()
    _write(
        tmp_path / "sub" / "b.json",
        json.dumps(
            {
                "rasa_nlu_data": {
                    "common_examples": [{"text": "bye", "intent": "goodbye"}]
                }
            }
        ),
    )
    _write(tmp_path / "stories.md", "## happy path\n* greet\n  - utter_greet\n")
    data = load_nlu_data(tmp_path, lookup_files=True)
    assert len(data.examples) == 5
    assert data.examples[-1] == Example("bye", "goodbye", ())
    assert data.intents == ["goodbye", "greet", "restaurant_search"]


BAD_JSON_ENTITY = """\
{"rasa_nlu_data": {
  "common_examples": [
    {"text": "hi", "intent": "greet"},
    {"text": "in paris", "intent": "go", "entities": [
      {"start": 3, "end": 8, "entity": "city"},
      {"start": 3, "end": 9, "entity": "city"}
    ]}
  ]
}}
"""

MALFORMED = [
    (
        "bad.json",
        '{"rasa_nlu_data": {\n  "common_examples": [\n    {"text": "hi",,}\n]}}',
        3,
        "invalid JSON",
    ),
    (
        "keys.json",
        '{"rasa_nlu_data":\n {"common_examples": [], "foo": []}}',
        2,
        "unknown keys",
    ),
    ("range.json", BAD_JSON_ENTITY, 6, "out of range"),
    (
        "types.json",
        BAD_JSON_ENTITY.replace('"start": 3, "end": 8', '"start": "3", "end": 8'),
        5,
        "integers",
    ),
    ("header.md", "## intent:greet\n- hi\n## foo:bar\n- x\n", 3, "unknown section"),
    ("annotation.md", "## intent:go\n- to [paris](city\n", 2, "entity annotation"),
    ("empty_entity.md", "## intent:go\n\n- to [paris]() now\n", 3, "entity annotation"),
    ("outside.md", "\n- hello\n## intent:greet\n- hi\n", 2, "outside any"),
    ("comment.md", "## intent:greet\n- hi\n<!-- never closed\n- yo\n", 3, "unclosed"),
    ("regex.md", "## regex:zip\n- [0-9\n", 2, "invalid regex"),
    ("lookup.md", "## lookup:city\n- Rome\nmissing.txt\n", 3, "lookup table file"),
    (
        "lookup.json",
        '{"rasa_nlu_data": {"lookup_tables": [\n {"name": "c", "elements": "x.txt"}]}}',
        2,
        "lookup table file",
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "line", "reason"),
    MALFORMED,
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_file_names_file_and_line(
    tmp_path: Path, name: str, content: str, line: int, reason: str
) -> None:
    path = _write(tmp_path / name, content)
    with pytest.raises(TrainingDataError) as excinfo:
        load_nlu_data(path, lookup_files=True)
    error = excinfo.value
    assert (error.path, error.line) == (str(path), line)
    assert reason in error.reason
    assert str(error).startswith(f"{path}:{line}: ")


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="no such"):
        load_nlu_data(tmp_path / "nope.md")


@pytest.mark.parametrize("name", ["/etc/passwd", "../secret.txt", "drinks.txt"])
@pytest.mark.parametrize("fmt", ["json", "md"])
def test_client_data_names_no_file(tmp_path: Path, name: str, fmt: str) -> None:
    """Data sent over HTTP never reads a server file, and the error is the same
    whether the file exists or not."""
    (tmp_path / "drinks.txt").write_text("root:x:0:0:root:/root:/bin/bash\n")
    if fmt == "json":
        lookup = {"name": "drink", "elements": name}
        content = json.dumps({"rasa_nlu_data": {"lookup_tables": [lookup]}})
    else:
        content = f"## intent:greet\n- hi\n## lookup:drink\n{name}\n"
    path = _write(tmp_path / "data" / f"nlu.{fmt}", content)
    with pytest.raises(TrainingDataError) as excinfo:
        load_nlu_data(path)
    assert "cannot name files" in excinfo.value.reason
    assert "No such file" not in str(excinfo.value)


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.txt"])
def test_cli_lookup_file_stays_in_its_folder(tmp_path: Path, name: str) -> None:
    (tmp_path / "outside.txt").write_text("secret\n")
    lookup = {"name": "drink", "elements": name}
    content = json.dumps({"rasa_nlu_data": {"lookup_tables": [lookup]}})
    path = _write(tmp_path / "data" / "nlu.json", content)
    with pytest.raises(TrainingDataError, match="outside the folder"):
        load_nlu_data(path, lookup_files=True)


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?<=x)a", r"(?!a)b"])
def test_regex_that_cannot_run_in_linear_time_is_refused(
    tmp_path: Path, pattern: str
) -> None:
    path = _write(tmp_path / "nlu.md", f"## regex:r\n- {pattern}\n")
    with pytest.raises(TrainingDataError) as excinfo:
        load_nlu_data(path)
    assert repr(pattern) in excinfo.value.reason
