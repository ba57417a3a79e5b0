"""Error messages answered to clients name files, not server folders (issue 11.4)."""

from worker.errors import TrainingDataError
from worker.errors import public_message


def test_server_folders_are_dropped_from_messages():
    err = TrainingDataError("bad", "/tmp/dialogd-check-x1/domain.yml", 3)
    assert public_message(str(err)) == "domain.yml:3: bad"
    assert (
        public_message('in "/srv/models/m/nlu/metadata.json", line 1')
        == 'in "metadata.json", line 1'
    )


def test_intents_urls_and_relative_paths_are_kept():
    for message in (
        "unknown action '/greet/x'",
        "see http://example.com/a/b/c",
        "a/b/c.yml",
        "/greet",
    ):
        assert public_message(message) == message
