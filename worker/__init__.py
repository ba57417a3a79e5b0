"""The dialogue engine: domain, events, tracker, NLU, policies and the turn."""

from worker.version import __version__

__all__ = ["__version__"]
