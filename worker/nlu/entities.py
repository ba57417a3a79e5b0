"""Entity extraction: an averaged structured perceptron over BILOU tags.

Weights exist only for (feature, tag) pairs seen in the gold training data (as in
CRFsuite), stored CSR-like by feature: a 150-tag model with 100k features stays a few
MB instead of ``features x tags`` floats. Decoding is Viterbi restricted to valid
BILOU transitions, so every predicted span is well formed.

Two optional inputs: contextual token vectors from a dense featurizer
(`Message.token_vectors`, L2-normalised and scaled by ``dense_scale``, with one
dense weight row per tag), and the intent (``intent_features``: the gold intent in
training, the predicted one at parse time).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Self

import numpy as np

from worker.errors import InvalidConfig
from worker.nlu.base import Component
from worker.nlu.base import Message
from worker.nlu.base import Token
from worker.nlu.base import check_param
from worker.nlu.base import is_int
from worker.nlu.base import is_number
from worker.nlu.patterns import PatternError
from worker.nlu.patterns import compile_data_pattern
from worker.nlu.training_data import Entity
from worker.nlu.training_data import NLUData

_FORBIDDEN = -1e9
_SHAPE = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
    "X" * 26 + "x" * 26 + "d" * 10,
)


def bilou_tags(entity_types: Sequence[str]) -> list[str]:
    """``O`` then B/I/L/U for each entity type, in a stable order."""
    return ["O"] + [f"{p}-{e}" for e in sorted(entity_types) for p in "BILU"]


def allowed_transitions(tags: Sequence[str]) -> np.ndarray:
    """``(T+1, T+1)`` mask of legal BILOU moves; index ``T`` is the sentence edge."""
    n = len(tags)
    prefix = [t[0] for t in tags] + ["edge"]
    kind = [t[2:] for t in tags] + [""]
    allowed = np.zeros((n + 1, n + 1), bool)
    for a in range(n + 1):
        for b in range(n + 1):
            if prefix[a] in ("B", "I"):
                allowed[a, b] = prefix[b] in ("I", "L") and kind[a] == kind[b]
            else:
                allowed[a, b] = prefix[b] in ("O", "B", "U", "edge")
    allowed[n, n] = False
    return allowed


#: Runs of three or more of a character, which a word shape cuts to two.
_RUN = re.compile(r"(.)\1{2,}")


def _shape(word: str) -> str:
    # PERF: a function replacement; Python 3.11 expands a "\1\1" template in
    # Python code, several times slower.
    return _RUN.sub(_two_of_run, word.translate(_SHAPE))


def _two_of_run(run: re.Match[str]) -> str:
    return run[1] * 2


def token_features(
    tokens: Sequence[Token], matched: Sequence[set[str]]
) -> list[list[str]]:
    """Feature strings per token: word form, affixes, shape, neighbours, patterns."""
    lower = [t.text.lower() for t in tokens]
    padded = ["<s2>", "<s1>", *lower, "</s1>", "</s2>"]
    feats = []
    for i, token in enumerate(tokens):
        word, text = lower[i], token.text
        f = [
            "b",
            f"w={word}",
            f"p2={word[:2]}",
            f"p3={word[:3]}",
            f"s2={word[-2:]}",
            f"s3={word[-3:]}",
            f"s4={word[-4:]}",
            f"sh={_shape(text)}",
            f"w-1={padded[i + 1]}",
            f"w+1={padded[i + 3]}",
            f"w-2={padded[i]}",
            f"w+2={padded[i + 4]}",
            f"w-1w={padded[i + 1]}|{word}",
            f"ww+1={word}|{padded[i + 3]}",
        ]
        if text.isdigit():
            f.append("digit")
        if text.istitle():
            f.append("title")
        if i > 0 and tokens[i - 1].text.istitle():
            f.append("title-1")
        if i + 1 < len(tokens) and tokens[i + 1].text.istitle():
            f.append("title+1")
        f.extend(f"pat={name}" for name in sorted(matched[i]))
        feats.append(f)
    return feats


#: Joins an entity type with its role and group in one tag label (a character no
#: entity name holds), so one tagger learns Rasa 2+'s roles and groups too.
_PART = "\x1f"


def entity_label(entity: Mapping[str, Any]) -> str:
    """``entity``, or ``entity<US>role<US>group`` when a role or group is given."""
    role, group = entity.get("role"), entity.get("group")
    if role is None and group is None:
        return entity["entity"]
    return _PART.join((entity["entity"], role or "", group or ""))


def split_label(label: str) -> dict[str, str]:
    """The ``entity``, ``role`` and ``group`` keys of a label (only those set)."""
    if _PART not in label:
        return {"entity": label}
    entity, role, group = label.split(_PART)
    out = {"entity": entity}
    if role:
        out["role"] = role
    if group:
        out["group"] = group
    return out


def gold_tags(
    tokens: Sequence[Token], entities: Sequence[Entity], index: Mapping[str, int]
) -> np.ndarray:
    """BILOU tag ids from character spans; spans overlapping earlier ones drop."""
    tags = np.zeros(len(tokens), np.int64)
    for ent in entities:
        covered = [
            i
            for i, t in enumerate(tokens)
            if t.start < ent["end"] and t.end > ent["start"]
        ]
        if not covered or tags[covered].any():
            continue
        kind = entity_label(ent)
        if len(covered) == 1:
            tags[covered[0]] = index[f"U-{kind}"]
            continue
        tags[covered] = index[f"I-{kind}"]
        tags[covered[0]] = index[f"B-{kind}"]
        tags[covered[-1]] = index[f"L-{kind}"]
    return tags


def viterbi(scores: np.ndarray, transitions: np.ndarray) -> np.ndarray:
    """Best tag path for ``(n_tokens, T)`` scores and ``(T+1, T+1)`` transitions."""
    return _best_path(scores, *_decoder(transitions))


def _decoder(transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_best_path`'s view of ``transitions``: start, ``[to, from]`` and end scores.

    In float64 like the (bincount) scores they are added to, so no step casts.
    """
    n_tags = transitions.shape[0] - 1
    inner_t = transitions[:n_tags, :n_tags].T.astype(np.float64, order="C")
    start, end = transitions[n_tags, :n_tags], transitions[:n_tags, n_tags]
    return start.astype(np.float64), inner_t, end.astype(np.float64)


def _best_path(
    scores: np.ndarray, start: np.ndarray, inner_t: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """`viterbi` on the `_decoder` view, which a fitted extractor computes once."""
    # PERF: with the transitions transposed, each tag's best predecessor is an
    # argmax along a contiguous row, much faster than down a column.
    n, n_tags = scores.shape
    delta = start + scores[0]
    back = np.zeros((n, n_tags), np.int64)
    rows = np.arange(n_tags)
    for i in range(1, n):
        candidates = inner_t + delta
        back[i] = candidates.argmax(axis=1)
        delta = candidates[rows, back[i]] + scores[i]
    path = np.empty(n, np.int64)
    path[-1] = int((delta + end).argmax())
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


class PerceptronEntityExtractor(Component):
    """Averaged structured perceptron (Collins 2002) with BILOU tags and Viterbi.

    ``dense_scale`` weighs the token vectors against the binary sparse features
    (0 ignores them); ``intent_features`` adds the intent and intent+word features.
    """

    provides = frozenset({"entities"})
    fitted_attribute = "tags_"

    @property
    def requires(self) -> frozenset[str]:  # type: ignore[override]
        """Tokens, and the intent when ``intent_features`` is on."""
        if self.intent_features is True:
            return frozenset({"tokens", "intent"})
        return frozenset({"tokens"})

    def __init__(
        self,
        epochs: int = 8,
        random_state: int = 0,
        dense_scale: float = 3.0,
        intent_features: bool = False,
    ) -> None:
        self.epochs = epochs
        self.random_state = random_state
        self.dense_scale = dense_scale
        self.intent_features = intent_features

    def fit(self, messages: Sequence[Message], data: NLUData) -> Self:
        """Learn tag weights from every example (those without entities teach ``O``)."""
        check_param("epochs", self.epochs, is_int(self.epochs, 1), "an int >= 1")
        check_param(
            "random_state", self.random_state, is_int(self.random_state), "an int >= 0"
        )
        check_param(
            "intent_features",
            self.intent_features,
            isinstance(self.intent_features, bool),
            "a bool",
        )
        check_param(
            "dense_scale",
            self.dense_scale,
            is_number(self.dense_scale, 0.0),
            "a number >= 0",
        )
        types = sorted({entity_label(e) for ex in data.examples for e in ex.entities})
        self.tags_ = np.array(bilou_tags(types), dtype=str)
        self._compile_patterns(
            [(f"re:{name}", pattern) for name, pattern in data.regex_features]
            + [
                (f"lookup:{name}", _lookup_regex(els))
                for name, els in data.lookup_tables
                if els
            ]
        )
        index = {tag: i for i, tag in enumerate(self.tags_)}
        sentences: list[tuple[np.ndarray, ...]] = []
        dense: list[np.ndarray | None] = []
        for message, example in zip(messages, data.examples, strict=True):
            if message.tokens:
                hashes, owner = self._hashed_features(message, example.intent)
                gold = gold_tags(message.tokens, example.entities, index)
                sentences.append((hashes, owner, gold))
                dense.append(self._dense(message))
        self._index_pairs(sentences)
        self._train(sentences, dense)
        return self

    def _dense(self, message: Message) -> np.ndarray | None:
        """Scaled, L2-normalised token vectors, or None (then they are not used)."""
        vectors = message.token_vectors
        if vectors is None or not self.dense_scale:
            return None
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        scale = np.float32(self.dense_scale)
        return (vectors * scale / np.maximum(norms, 1e-6)).astype(np.float32)

    def _compile_patterns(self, patterns: list[tuple[str, str]]) -> None:
        self.pattern_names_ = np.array([name for name, _ in patterns], dtype=str)
        self.pattern_sources_ = np.array([source for _, source in patterns], dtype=str)
        try:
            self._patterns = [
                (name, compile_data_pattern(source)) for name, source in patterns
            ]
        except PatternError as err:
            raise InvalidConfig(str(err)) from err

    def _hashed_features(
        self, message: Message, intent: str | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stable 32-bit hashes of all token features, and the token of each."""
        tokens = message.tokens
        matched: list[set[str]] = [set() for _ in tokens]
        for name, regex in self._patterns:
            for match in regex.finditer(message.text):
                if match.end() == match.start():
                    continue
                for i, token in enumerate(tokens):
                    if token.start < match.end() and token.end > match.start():
                        matched[i].add(name)
        per_token = token_features(tokens, matched)
        if self.intent_features and intent is not None:
            # NOTE: entity types depend on the intent ("object_name" of a book to
            # rate vs. of a film to find): gold intents in training, predicted
            # ones at parse time.
            for feats in per_token:
                word = feats[1]
                feats.extend((f"i={intent}", f"i={intent}|{word}"))
        hashes = [zlib.crc32(f.encode()) for feats in per_token for f in feats]
        owner = np.repeat(np.arange(len(tokens)), [len(f) for f in per_token])
        return np.array(hashes, dtype=np.uint64), owner

    def _index_pairs(self, sentences: list[tuple[np.ndarray, ...]]) -> None:
        """Allow a weight for each (feature, tag) pair seen in the gold data."""
        if sentences:
            keys = np.concatenate(
                [(h << np.uint64(16)) | g[o].astype(np.uint64) for h, o, g in sentences]
            )
        else:
            keys = np.empty(0, np.uint64)
        keys = np.unique(keys)
        features = keys >> np.uint64(16)
        self.features_, first = np.unique(features, return_index=True)
        self.feature_ptr_ = np.append(first, keys.size).astype(np.int64)
        self.pair_tags_ = (keys & np.uint64(0xFFFF)).astype(np.int64)

    def _pairs(self, hashes: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, ...]:
        """Weight indices and their token for the known features of one sentence."""
        if not self.features_.size:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        # Searching all but the last feature keeps every position in range.
        pos = self.features_[:-1].searchsorted(hashes)
        known = self.features_[pos] == hashes
        pos, owner = pos[known], owner[known]
        starts = self.feature_ptr_[pos]
        counts = self.feature_ptr_[pos + 1] - starts
        shift = np.repeat(starts - (np.cumsum(counts) - counts), counts)
        return shift + np.arange(shift.size), np.repeat(owner, counts)

    def _scores(
        self, pairs: np.ndarray, owner: np.ndarray, n_tokens: int, weights: np.ndarray
    ) -> np.ndarray:
        n_tags = self.tags_.size
        cells = owner * n_tags + self.pair_tags_[pairs]
        flat = np.bincount(cells, weights=weights[pairs], minlength=n_tokens * n_tags)
        return flat.reshape(n_tokens, n_tags)

    def _train(
        self,
        sentences: list[tuple[np.ndarray, ...]],
        dense: list[np.ndarray | None],
    ) -> None:
        n_tags = self.tags_.size
        mask = np.where(allowed_transitions(list(self.tags_)), 0.0, _FORBIDDEN)
        weights = np.zeros(self.pair_tags_.size)
        trans = np.zeros((n_tags + 1, n_tags + 1))
        first = dense[0] if dense else None
        width = 0 if first is None or any(d is None for d in dense) else first.shape[1]
        dense_w = np.zeros((n_tags, width), np.float32)
        dense_totals = np.zeros(dense_w.shape)
        # Daumé's trick: averaged = current - totals / count, with no per-step copy.
        weight_totals, trans_totals = np.zeros_like(weights), np.zeros_like(trans)
        count = 1
        rng = np.random.default_rng(self.random_state)
        prepared = []
        for h, o, g in sentences:
            pairs, owner = self._pairs(h, o)
            tag = self.pair_tags_[pairs]
            prepared.append((pairs, owner, g, owner * n_tags + tag, tag))
        for _ in range(self.epochs if n_tags > 1 else 0):
            for s in rng.permutation(len(prepared)):
                pairs, owner, gold, cells, tag = prepared[s]
                scores = np.bincount(
                    cells, weights=weights[pairs], minlength=gold.size * n_tags
                ).reshape(gold.size, n_tags)
                if width:
                    scores += dense[s] @ dense_w.T
                pred = viterbi(scores, trans + mask)
                wrong = pred != gold
                if wrong.any():
                    if width:
                        rows = dense[s][wrong]
                        for path, sign in ((gold, 1.0), (pred, -1.0)):
                            np.add.at(dense_w, path[wrong], sign * rows)
                            np.add.at(dense_totals, path[wrong], sign * count * rows)
                    sel = wrong[owner]
                    for path, sign in ((gold, 1.0), (pred, -1.0)):
                        hit = pairs[sel & (tag == path[owner])]
                        np.add.at(weights, hit, sign)
                        np.add.at(weight_totals, hit, sign * count)
                        edges = np.concatenate(([n_tags], path, [n_tags]))
                        flat = edges[:-1] * (n_tags + 1) + edges[1:]
                        np.add.at(trans.ravel(), flat, sign)
                        np.add.at(trans_totals.ravel(), flat, sign * count)
                count += 1
        self.weights_ = (weights - weight_totals / count).astype(np.float32)
        self.dense_weights_ = (dense_w - dense_totals / count).astype(np.float32)
        self.transitions_ = (trans - trans_totals / count).astype(np.float32)
        self._decoder = _decoder((self.transitions_ + mask).astype(np.float32))

    def predict(self, message: Message) -> list[dict[str, Any]]:
        """Entities of one tokenized message, with uncalibrated confidences."""
        self.check_fitted()
        if self.tags_.size == 1 or not message.tokens:
            return []
        intent = (message.intent or {}).get("name")
        hashes, owner = self._hashed_features(message, intent)
        pairs, owner = self._pairs(hashes, owner)
        scores = self._scores(pairs, owner, len(message.tokens), self.weights_)
        if self.dense_weights_.shape[1]:
            vectors = self._dense(message)
            if vectors is None or vectors.shape[1] != self.dense_weights_.shape[1]:
                raise ValueError(
                    "PerceptronEntityExtractor was trained with token vectors; "
                    "the pipeline gave it none or another width"
                )
            scores += vectors @ self.dense_weights_.T
        path = _best_path(scores, *self._decoder)
        probs = np.exp(scores - scores.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        confidence = probs[np.arange(path.size), path]
        return self._spans(message, path, confidence)

    def _spans(
        self, message: Message, path: np.ndarray, confidence: np.ndarray
    ) -> list[dict[str, Any]]:
        entities, begin = [], 0
        for i, tag_id in enumerate(path):
            tag = str(self.tags_[tag_id])
            if tag[0] in "BU":
                begin = i
            if tag[0] in "LU":
                start, end = message.tokens[begin].start, message.tokens[i].end
                entities.append(
                    {
                        "start": start,
                        "end": end,
                        "value": message.text[start:end],
                        **split_label(tag[2:]),
                        "confidence": float(confidence[begin : i + 1].mean()),
                        "extractor": type(self).__name__,
                    }
                )
        return entities

    def process(self, message: Message) -> None:
        message.entities.extend(self.predict(message))

    def to_arrays(self) -> dict[str, np.ndarray]:
        self.check_fitted()
        return {
            "tags_": self.tags_,
            "features_": self.features_,
            "feature_ptr_": self.feature_ptr_,
            "pair_tags_": self.pair_tags_,
            "weights_": self.weights_,
            "dense_weights_": self.dense_weights_,
            "transitions_": self.transitions_,
            "pattern_names_": self.pattern_names_,
            "pattern_sources_": self.pattern_sources_,
        }

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.tags_ = np.asarray(arrays["tags_"], dtype=str)
        self.features_ = np.asarray(arrays["features_"], dtype=np.uint64)
        self.feature_ptr_ = np.asarray(arrays["feature_ptr_"], dtype=np.int64)
        self.pair_tags_ = np.asarray(arrays["pair_tags_"], dtype=np.int64)
        self.weights_ = np.asarray(arrays["weights_"], dtype=np.float32)
        self.transitions_ = np.asarray(arrays["transitions_"], dtype=np.float32)
        n_tags = self.tags_.size
        # NOTE: models saved before token vectors existed have no dense_weights_.
        self.dense_weights_ = np.asarray(
            arrays.get("dense_weights_", np.zeros((n_tags, 0))), dtype=np.float32
        )
        if (
            self.feature_ptr_.size != self.features_.size + 1
            or self.weights_.shape != self.pair_tags_.shape
            or self.transitions_.shape != (n_tags + 1, n_tags + 1)
            or self.dense_weights_.ndim != 2
            or self.dense_weights_.shape[0] != n_tags
        ):
            raise ValueError("entity extractor arrays have inconsistent shapes")
        names, sources = arrays["pattern_names_"], arrays["pattern_sources_"]
        self._compile_patterns(list(zip(names.tolist(), sources.tolist(), strict=True)))
        mask = np.where(allowed_transitions(list(self.tags_)), 0.0, _FORBIDDEN)
        self._decoder = _decoder((self.transitions_ + mask).astype(np.float32))


def _lookup_regex(elements: Sequence[str]) -> str:
    """One case-insensitive alternation, longest first, bounded by non-word chars."""
    options = "|".join(re.escape(e) for e in sorted(elements, key=len, reverse=True))
    return rf"(?i)(?<!\w)(?:{options})(?!\w)"
