"""Where the tests find the shared datasets: ``../shared/data`` beside the project
(as on CI), or ``DIALOGD_SHARED_DATA``."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(
    os.environ.get("DIALOGD_SHARED_DATA", ROOT.parent / "shared" / "data")
)
RASA_EXAMPLES = SHARED_DATA / "rasa_examples"
