"""Rasa 2.x/3.x NLU YAML: every item kind and annotation form, read from real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import TrainingDataError
from worker.nlu import load_nlu_data

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

FULL = """\
version: "3.1"
nlu:
- intent: greet
  metadata:
    sentiment: neutral
  examples: |
    - hey
    - hello there
- intent: book_flight
  examples: |
    - from [Berlin]{"entity": "city", "role": "departure"} to [Paris](city)
    - a [large](size:big) [pizza](dish)
    - [two]{"entity": "amount", "group": "1", "value": "2"} coffees
    - [New York][{"entity": "city"}, {"entity": "location"}] please
- intent: inform
  examples:
  - text: |
      I am in [Rome](city)
    metadata:
      source: logs
  - text: just text
- synonym: savings
  examples: |
    - pink pig
    - piggy bank
- regex: account_number
  examples: |
    - \\d{10,12}
- lookup: city
  examples: |
    - Berlin
    - Rome
stories:
- story: a story in the same file is not NLU
  steps:
  - intent: greet
"""


def write(tmp_path: Path, text: str, name: str = "nlu.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_item_kind(tmp_path):
    data = load_nlu_data(write(tmp_path, FULL))
    by_text = {ex.text: ex for ex in data.examples}
    assert set(data.intents) == {"greet", "book_flight", "inform"}
    assert by_text["hello there"].intent == "greet"
    assert by_text["just text"].intent == "inform"
    assert by_text["I am in Rome"].entities == (
        {"start": 8, "end": 12, "value": "Rome", "entity": "city"},
    )
    assert data.synonyms["pink pig"] == "savings"
    assert data.synonyms["piggy bank"] == "savings"
    assert data.regex_features == (("account_number", r"\d{10,12}"),)
    assert dict(data.lookup_tables)["city"] == ("Berlin", "Rome")


def test_roles_groups_values_and_entity_lists(tmp_path):
    data = load_nlu_data(write(tmp_path, FULL))
    by_text = {ex.text: ex for ex in data.examples}
    flight = by_text["from Berlin to Paris"]
    assert [(e["value"], e.get("role")) for e in flight.entities] == [
        ("Berlin", "departure"),
        ("Paris", None),
    ]
    pizza = by_text["a large pizza"]
    assert [(e["entity"], e["value"]) for e in pizza.entities] == [
        ("size", "big"),
        ("dish", "pizza"),
    ]
    assert data.synonyms["large"] == "big"
    (two,) = by_text["two coffees"].entities
    assert (two["value"], two["group"], two["start"], two["end"]) == ("2", "1", 0, 3)
    york = by_text["New York please"].entities
    assert [e["entity"] for e in york] == ["city", "location"]
    assert all((e["start"], e["end"]) == (0, 8) for e in york)


def test_rasa_init_nlu_loads_unchanged():
    data = load_nlu_data(FIXTURES / "rasa_init" / "data" / "nlu.yml")
    assert len(data.intents) == 7
    assert len(data.examples) == 68


def test_folder_reads_yaml_with_nlu_and_skips_other_yaml(tmp_path):
    write(tmp_path, FULL, "nlu.yml")
    write(tmp_path, "version: '3.1'\nrules:\n- rule: r\n  steps: []\n", "rules.yml")
    data = load_nlu_data(tmp_path)
    assert "greet" in data.intents


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("nlu:\n- intent: greet\n  examples: |\n    - hi\n    oops\n", 5, "'- '"),
        ("nlu:\n- intent: greet\n  exampels: |\n    - hi\n", 3, "unknown keys"),
        ("nlu:\n- intent: greet\n  synonym: x\n", 2, "exactly one"),
        ("nlu:\n- intent: a\n  examples: |\n    - [x]{not json}\n", 4, "JSON"),
        ('nlu:\n- intent: a\n  examples: |\n    - [x]{"role": "r"}\n', 4, "entity"),
        ("nlu:\n- intent: a\n  examples: |\n    - x [y](\n", 4, "annotation"),
        ("nlu:\n- regex: r\n  examples: |\n    - (\n", 4, "invalid regex"),
        ("nlu:\n- intent: a\n  examples:\n  - txt: b\n", 4, "'text'"),
        ("nlu: x\n", 1, "list"),
        ("nlux:\n- intent: a\n", 1, "unknown top-level"),
        ("nlu:\n- intent: a\n  examples: |\n   - a\n  - b\n", 5, "invalid YAML"),
    ],
)
def test_malformed_yaml_names_file_and_line(tmp_path, text, line, fragment):
    path = write(tmp_path, text)
    with pytest.raises(TrainingDataError) as info:
        load_nlu_data(path)
    assert info.value.path == str(path)
    assert info.value.line == line
    assert fragment in str(info.value)


def test_trains_and_parses_roles_data(tmp_path):
    from worker.nlu import NLUPipeline

    data = load_nlu_data(FIXTURES / "rasa_init" / "data" / "nlu.yml")
    pipeline = NLUPipeline().fit(data)
    assert pipeline.parse("hello there")["intent"]["name"] == "greet"


def _roles_data() -> str:
    """Flights between cities, the cities' roles given by their place."""
    cities = ["Berlin", "Rome", "Paris", "Oslo", "Madrid", "Vienna", "Lisbon", "Bern"]
    lines = []
    for a, b in zip(cities, cities[1:] + cities[:1], strict=True):
        origin = f'[{a}]{{"entity": "city", "role": "from"}}'
        target = f'[{b}]{{"entity": "city", "role": "to"}}'
        lines += [f"from {origin} to {target}", f"to {target} from {origin}"]
    for one, two in (("two", "one"), ("three", "two"), ("one", "four")):
        lines.append(
            f'[{one}]{{"entity": "count", "group": "1"}} pizzas and '
            f'[{two}]{{"entity": "count", "group": "2"}} salads'
        )
    examples = "".join(f"    - {line}\n" for line in lines)
    return (
        f"nlu:\n- intent: fly\n  examples: |\n{examples}"
        "- intent: greet\n  examples: |\n    - hello\n    - hi there\n"
    )


def test_roles_and_groups_reach_the_parse_output(tmp_path):
    from worker.nlu import NLUPipeline

    pipeline = NLUPipeline().fit(load_nlu_data(write(tmp_path, _roles_data())))
    entities = pipeline.parse("from Prague to Athens")["entities"]
    assert [(e["value"], e["entity"], e.get("role")) for e in entities] == [
        ("Prague", "city", "from"),
        ("Athens", "city", "to"),
    ]
    counts = pipeline.parse("two pizzas and three salads")["entities"]
    assert [(e["value"], e.get("group")) for e in counts] == [
        ("two", "1"),
        ("three", "2"),
    ]
