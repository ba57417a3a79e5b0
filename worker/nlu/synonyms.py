"""Maps extracted entity values to canonical values (Rasa's EntitySynonymMapper)."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Self

import numpy as np

from worker.nlu.base import Component
from worker.nlu.base import Message
from worker.nlu.training_data import NLUData


class EntitySynonymMapper(Component):
    """Replaces a value whose lower-cased text is a known synonym, and says so."""

    requires = frozenset({"entities"})
    provides = frozenset({"entities"})
    fitted_attribute = "synonyms_"

    def __init__(self) -> None:
        """No hyperparameters: the synonyms come from the training data."""

    def fit(self, messages: Sequence[Message], data: NLUData) -> Self:
        """Take the explicit and implicit synonyms the loader collected."""
        self.synonyms_ = {
            surface.lower(): value for surface, value in data.synonyms.items()
        }
        return self

    def process(self, message: Message) -> None:
        self.check_fitted()
        for entity in message.entities:
            canonical = self.synonyms_.get(str(entity["value"]).lower())
            if canonical is not None:
                entity["value"] = canonical
                entity["processors"] = [
                    *entity.get("processors", []),
                    type(self).__name__,
                ]

    def to_arrays(self) -> dict[str, np.ndarray]:
        self.check_fitted()
        return {
            "surfaces_": np.array(list(self.synonyms_), dtype=str),
            "values_": np.array(list(self.synonyms_.values()), dtype=str),
        }

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        surfaces, values = arrays["surfaces_"].tolist(), arrays["values_"].tolist()
        self.synonyms_ = dict(zip(surfaces, values, strict=True))
