"""Slot types, their mappings, and how each slot turns its value into policy features.

Types are rasa_core 0.x's (by name or class path) and Rasa 2.x/3.x's (``any`` is
the old ``unfeaturized``); a slot with ``influence_conversation: false`` keeps its
value in the tracker but gives the policies no feature, as in Rasa 2+.
"""

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
_BY_PATH["any"] = "unfeaturized"
#: A categorical slot that lists this value featurizes every unlisted value as it
#: (Rasa 2+): "some value" apart from the values that change what the bot does.
OTHER = "__other__"

#: Rasa 3's slot mapping types and the keys each may carry (Rasa docs, "Domain:
#: Slot Mappings"); ``custom`` mappings are filled by the action server.
MAPPING_KEYS = {
    "from_entity": {"entity", "intent", "not_intent", "role", "group", "conditions"},
    "from_text": {"intent", "not_intent", "conditions"},
    "from_intent": {"value", "intent", "not_intent", "conditions"},
    "from_trigger_intent": {"value", "intent", "not_intent", "conditions"},
    "custom": {"action", "conditions"},
}
_SLOT_KEYS = {
    "type",
    "initial_value",
    "auto_fill",
    "values",
    "min_value",
    "max_value",
    "influence_conversation",
    "mappings",
}


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
    influence: bool = True
    mappings: tuple[dict[str, Any], ...] = ()

    @property
    def dims(self) -> int:
        if not self.influence:
            return 0
        return {"text": 1, "bool": 2, "float": 1, "list": 1, "unfeaturized": 0}.get(
            self.type, len(self.values)
        )

    def features(self, value: Any) -> list[float]:
        """The slot's feature vector for ``value``."""
        if not self.influence:
            return []
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
            if key is not None and key not in self.values and OTHER in self.values:
                key = OTHER
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
        # NOTE: only Rasa 2+ settings that differ from the default are written, so
        # a 0.x domain's JSON (and fingerprint) is what it always was.
        if not self.influence and self.type != "unfeaturized":
            out["influence_conversation"] = False
        if self.mappings:
            out["mappings"] = [dict(m) for m in self.mappings]
        return out


def slot_from_spec(name: str, spec: Any) -> Slot:
    """Build a slot from its ``domain.yml`` entry, rejecting what we cannot honour."""
    if not isinstance(spec, dict):
        raise InvalidDomain(f"slot '{name}' must be a mapping with a 'type'")
    unknown = set(spec) - _SLOT_KEYS
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
    influence = spec.get("influence_conversation", kind != "unfeaturized")
    if not isinstance(influence, bool):
        raise InvalidDomain(f"slot '{name}': influence_conversation must be a bool")
    if kind == "unfeaturized" and influence:
        raise InvalidDomain(f"slot '{name}' of type any cannot influence the dialogue")
    mappings = spec.get("mappings") or []
    if not isinstance(mappings, list):
        raise InvalidDomain(f"slot '{name}': mappings must be a list")
    return Slot(
        name=name,
        type=kind,
        initial_value=spec.get("initial_value"),
        auto_fill=auto_fill,
        values=values,
        min_value=min_value,
        max_value=max_value,
        influence=influence,
        mappings=tuple(mapping_from_spec(name, m) for m in mappings),
    )


def mapping_from_spec(slot: str, spec: Any) -> dict[str, Any]:
    """One validated slot mapping: its type, the keys that type takes, names as
    strings and ``intent``/``not_intent`` as lists."""
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind not in MAPPING_KEYS:
        raise InvalidDomain(
            f"slot '{slot}': each mapping needs a 'type' of {sorted(MAPPING_KEYS)}"
        )
    unknown = set(spec) - MAPPING_KEYS[kind] - {"type"}
    if unknown:
        raise InvalidDomain(
            f"slot '{slot}': a {kind} mapping has unknown keys {sorted(unknown)}"
        )
    out: dict[str, Any] = {"type": kind}
    for key in ("entity", "role", "group", "action"):
        if key in spec:
            if not isinstance(spec[key], str):
                raise InvalidDomain(f"slot '{slot}': mapping '{key}' must be a name")
            out[key] = spec[key]
    if kind == "from_entity" and "entity" not in out:
        raise InvalidDomain(f"slot '{slot}': a from_entity mapping needs 'entity'")
    if kind in ("from_intent", "from_trigger_intent"):
        if "value" not in spec:
            raise InvalidDomain(f"slot '{slot}': a {kind} mapping needs a 'value'")
        out["value"] = spec["value"]
    for key in ("intent", "not_intent"):
        if key in spec:
            names = spec[key] if isinstance(spec[key], list) else [spec[key]]
            if not all(isinstance(n, str) for n in names):
                raise InvalidDomain(f"slot '{slot}': mapping '{key}' lists intents")
            out[key] = names
    if "conditions" in spec:
        conditions = spec["conditions"]
        ok = isinstance(conditions, list) and all(
            isinstance(c, dict)
            and set(c) <= {"active_loop", "requested_slot"}
            and all(isinstance(v, str | None) for v in c.values())
            for c in conditions
        )
        if not ok:
            raise InvalidDomain(
                f"slot '{slot}': mapping conditions are a list of "
                "{active_loop, requested_slot}"
            )
        out["conditions"] = [dict(c) for c in conditions]
    return out
