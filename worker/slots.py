"""Slot types and how each one turns its value into policy features
(Rasa Core 0.14 docs, "Slots")."""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from worker.errors import InvalidDomain

#: The original's class paths, accepted on input and written in ``GET /domain``.
CLASS_PATHS = {
    "text": "rasa_core.slots.TextSlot",
    "bool": "rasa_core.slots.BooleanSlot",
    "categorical": "rasa_core.slots.CategoricalSlot",
    "float": "rasa_core.slots.FloatSlot",
    "list": "rasa_core.slots.ListSlot",
    "unfeaturized": "rasa_core.slots.UnfeaturizedSlot",
}
_BY_PATH = {path: name for name, path in CLASS_PATHS.items()}
_BY_PATH.update({path.rsplit(".", 1)[1]: name for path, name in _BY_PATH.items()})


@dataclass(frozen=True, slots=True)
class Slot:
    """A slot's declaration; its value lives in the tracker."""

    name: str
    type: str
    initial_value: Any = None
    auto_fill: bool = True
    values: tuple[str, ...] = field(default=())
    min_value: float = 0.0
    max_value: float = 1.0

    @property
    def dims(self) -> int:
        return {"text": 1, "bool": 2, "float": 1, "list": 1, "unfeaturized": 0}.get(
            self.type, len(self.values)
        )

    def features(self, value: Any) -> list[float]:
        """The slot's feature vector for ``value``."""
        kind = self.type
        if kind == "text":
            return [1.0 if value is not None else 0.0]
        if kind == "bool":
            return [0.0, 0.0] if value is None else [1.0, float(value != 0)]
        if kind == "list":
            return [1.0 if isinstance(value, list) and value else 0.0]
        if kind == "float":
            try:
                v = float(value)
            except (TypeError, ValueError):
                return [0.0]
            if math.isnan(v):  # "nan" reads as a float: not a value to featurize
                return [0.0]
            span = self.max_value - self.min_value
            v = min(max(v, self.min_value), self.max_value)
            return [(v - self.min_value) / span if span else 0.0]
        if kind == "categorical":
            key = str(value).lower() if value is not None else None
            return [1.0 if key == v else 0.0 for v in self.values]
        return []

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": CLASS_PATHS[self.type],
            "initial_value": self.initial_value,
            "auto_fill": self.auto_fill,
        }
        if self.type == "categorical":
            out["values"] = list(self.values)
        if self.type == "float":
            out["max_value"] = self.max_value
            out["min_value"] = self.min_value
        return out


def slot_from_spec(name: str, spec: Any) -> Slot:
    """Build a slot from its ``domain.yml`` entry, rejecting what we cannot honour."""
    if not isinstance(spec, dict):
        raise InvalidDomain(f"slot '{name}' must be a mapping with a 'type'")
    unknown = set(spec) - {
        "type",
        "initial_value",
        "auto_fill",
        "values",
        "min_value",
        "max_value",
    }
    if unknown:
        raise InvalidDomain(f"slot '{name}' has unknown keys: {sorted(unknown)}")
    raw_type = spec.get("type")
    kind = raw_type if raw_type in CLASS_PATHS else _BY_PATH.get(str(raw_type))
    if kind is None:
        raise InvalidDomain(
            f"slot '{name}' has type {raw_type!r}; supported: {sorted(CLASS_PATHS)}"
            " (custom slot classes cannot be loaded: a model must not run code)"
        )
    auto_fill = spec.get("auto_fill", True)
    if not isinstance(auto_fill, bool):
        raise InvalidDomain(f"slot '{name}': auto_fill must be true or false")
    values: tuple[str, ...] = ()
    if kind == "categorical":
        raw = spec.get("values")
        if not isinstance(raw, list) or not raw:
            raise InvalidDomain(f"categorical slot '{name}' needs a list of 'values'")
        values = tuple(str(v).lower() for v in raw)
    try:
        min_value = float(spec.get("min_value", 0.0))
        max_value = float(spec.get("max_value", 1.0))
    except (TypeError, ValueError) as err:
        raise InvalidDomain(
            f"slot '{name}': min_value/max_value must be numbers"
        ) from err
    if kind == "float" and max_value <= min_value:
        raise InvalidDomain(f"slot '{name}': max_value must be above min_value")
    return Slot(
        name=name,
        type=kind,
        initial_value=spec.get("initial_value"),
        auto_fill=auto_fill,
        values=values,
        min_value=min_value,
        max_value=max_value,
    )
