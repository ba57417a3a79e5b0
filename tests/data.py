"""Where the tests find their data.

Small fixtures live in the repository under ``tests/fixtures`` (each folder's README
names its source and licence), so a fresh clone runs the suite. Tests that need a
whole public dataset are marked ``@pytest.mark.data("<set>")``, read it from the
``bench.data`` cache (``python -m bench.data fetch``) and skip when it is absent.
"""

from pathlib import Path

from bench import data as bench_data

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
RASA_EXAMPLES = FIXTURES / "rasa_examples"
#: 60 training and 20 validation examples per intent of SNIPS
SNIPS_SLICE = FIXTURES / "snips"
#: the first dialogues of dialog bAbI tasks 5 and 6 (trn and dev)
BABI_SLICE = FIXTURES / "dialog_babi"
#: the smallest Rasa NLU JSON that trains: two intents, two examples each
TINY_NLU = {
    "rasa_nlu_data": {
        "common_examples": [
            {"text": "hey", "intent": "greet"},
            {"text": "hello there", "intent": "greet"},
            {"text": "bye", "intent": "goodbye"},
            {"text": "see you", "intent": "goodbye"},
        ]
    }
}


def dataset(name: str) -> Path:
    """A whole public dataset, for a test marked ``data(name)``."""
    return bench_data.path(name)
