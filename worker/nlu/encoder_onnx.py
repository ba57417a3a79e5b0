"""The sentence encoder on ONNX Runtime: the optional fast backend.

The graph is built here, node by node, from the arrays of a `BertEncoder` (the
same safetensors weights, the same int8 quantization), so nothing is exported or
downloaded and the numpy forward pass stays the reference it is tested against.
Token and position embeddings are looked up in numpy (the word table is 47 MB
of float32 that ONNX Runtime would otherwise copy); the graph runs the six
layers, each as a few of ONNX Runtime's own kernels (``com.microsoft``):
attention in one kernel (``QAttention``: Q, K, V products, softmax, context),
each other linear layer one ``DynamicQuantizeMatMul`` (activations quantized per
tensor, as ``DynamicQuantizeLinear`` does, then an integer product, scale and
bias), exact GELU, layer norms. PERF: the same int8 function as the numpy
reference in 10 kernels a layer instead of 22 for the standard-operator graph (which
split, reshaped and transposed Q, K and V per layer): a short sentence's forward
pass is the int8 products plus a fixed cost per kernel.

The weights go in as int8 only where ONNX Runtime's uint8 x int8 product is exact:
without VNNI (AVX2 alone, AVX-512 without VNNI), its kernel adds pairs of products
in int16 with saturation, and a sentence vector drifts from the reference by up to
a cosine of 0.99, differently from one machine to the next. Elsewhere they go in
as uint8 with a zero point of 128 (the same integers), whose kernel widens first:
exact everywhere, about 17% slower on an AVX2 CPU.

Needs ``pip install dialogd[onnx]`` (``onnxruntime`` and ``onnx``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from worker.nlu.encoder import BertEncoder

#: ONNX opset of the graph (``LayerNormalization`` is standard from 17 on).
OPSET = 17
#: ONNX Runtime's own operators (fused attention, int8 products, GELU)
CONTRIB = "com.microsoft"


def available() -> bool:
    """True when ONNX Runtime and the ``onnx`` graph builder are installed."""
    return all(
        importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx")
    )


class OnnxEncoder(BertEncoder):
    """`BertEncoder` whose layers run in one ONNX Runtime session.

    The session is single-threaded (one sentence is too small to split, and a
    server has a worker per core) and is created with the encoder, before a
    server forks, so its weights are shared copy-on-write like the numpy ones.
    """

    def __init__(
        self, model_dir: str | Path, max_length: int = 128, weights: str = "float32"
    ) -> None:
        super().__init__(model_dir, max_length, weights)
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = (
            onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        graph = build_graph(self).SerializeToString()
        #: what ONNX Runtime holds (its weights, as serialized)
        self._graph_bytes = len(graph)
        self._session = onnxruntime.InferenceSession(
            graph,
            options,
            providers=["CPUExecutionProvider"],
            # NOTE: the fused skip + layer norm computes the norm another way; the
            # difference is tiny, but an int8 activation scale turns it into
            # flipped roundings (0.2 on a state): unfused, the session equals the
            # numpy reference to float32 noise, and is no slower.
            disabled_optimizers=["SkipLayerNormFusion"],
        )
        # NOTE: ONNX Runtime holds its own copies of the layers' weights; the
        # numpy reference's are not needed by this backend.
        self.layers = []

    @property
    def nbytes(self) -> int:
        arrays = [self.word, self.position, *self.emb_ln]
        arrays += [a for layer in self.layers for a in layer]
        return sum(a.nbytes for a in arrays) + self._graph_bytes

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        hidden = self.embed(ids)
        (states,) = self._session.run(None, {"hidden": hidden, "mask": mask})
        return states


def exact_signed_products(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU has VNNI, where ONNX Runtime's uint8 x int8 products sum
    in int32 (elsewhere in saturating int16); False where it cannot tell."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = {
        flag
        for line in text.splitlines()
        if line.startswith("flags")
        for flag in line.partition(":")[2].split()
    }
    return bool(flags & {"avx512_vnni", "avx_vnni"})


def build_graph(encoder: BertEncoder, signed: bool | None = None) -> Any:
    """The encoder's layers as an ONNX ``ModelProto``: ``hidden`` (batch, length,
    width) float and ``mask`` (batch, length) bool in, ``states`` out.

    ``signed``: int8 weights (True) or the same integers as uint8 with a zero
    point of 128 (False); by default int8 where `exact_signed_products`."""
    from onnx import TensorProto
    from onnx import helper
    from onnx import numpy_helper

    nodes: list[Any] = []
    initializers: list[Any] = []

    def const(name: str, value: Any) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(kind: str, inputs: list[str], output: str, **attributes: Any) -> str:
        nodes.append(helper.make_node(kind, inputs, [output], **attributes))
        return output

    width, heads = encoder.hidden, encoder.heads
    int8 = bool(encoder.scales)
    if signed is None:
        signed = exact_signed_products()

    def int8_weight(name: str, quantized: np.ndarray, scales: np.ndarray) -> list[str]:
        """The weight and its zero point ("": none) as the kernels take them."""
        if signed:
            return [const(f"{name}_wq", quantized), ""]
        shifted = (quantized.astype(np.int16) + 128).astype(np.uint8)
        zero = np.full(scales.shape, 128, np.uint8)
        return [const(f"{name}_wq", shifted), const(f"{name}_wz", zero)]

    # the attention kernels take the raw mask: 1 for real tokens, 0 for padding
    op("Cast", ["mask"], "mask_index", to=TensorProto.INT32)

    def linear(name: str, x: str, weight: np.ndarray, bias: np.ndarray, q: Any) -> str:
        if q is None:
            product = op("MatMul", [x, const(f"{name}_w", weight)], f"{name}_mm")
            return op("Add", [product, const(f"{name}_b", bias)], name)
        quantized, scales = q
        wq, wz = int8_weight(name, quantized, scales)
        # DynamicQuantizeLinear -> MatMulInteger -> scale -> bias in one kernel
        return op(
            "DynamicQuantizeMatMul",
            [x, wq, const(f"{name}_ws", scales), wz, const(f"{name}_b", bias)],
            name,
            domain=CONTRIB,
        )

    def attention(name: str, x: str, layer: Any, q: Any) -> str:
        """Q, K, V products, scaled dot products, softmax and context in one
        kernel; int8: the input quantized as `DynamicQuantizeLinear` does."""
        bias = const(f"{name}_b", layer.qkv_b)
        if q is None:
            inputs = [x, const(f"{name}_w", layer.qkv_w), bias, "mask_index"]
            return op("Attention", inputs, name, domain=CONTRIB, num_heads=heads)
        quantized, scales = q
        wq, wz = int8_weight(name, quantized, scales)
        nodes.append(
            helper.make_node(
                "DynamicQuantizeLinear",
                [x],
                [f"{name}_xq", f"{name}_xs", f"{name}_xz"],
            )
        )
        inputs = [
            f"{name}_xq",
            wq,
            bias,
            f"{name}_xs",
            const(f"{name}_ws", scales),
            "mask_index",
            f"{name}_xz",
            wz,
        ]
        return op("QAttention", inputs, name, domain=CONTRIB, num_heads=heads)

    def layer_norm(name: str, x: str, weight: np.ndarray, bias: np.ndarray) -> str:
        return op(
            "LayerNormalization",
            [x, const(f"{name}_w", weight), const(f"{name}_b", bias)],
            name,
            axis=-1,
            epsilon=encoder.eps,
        )

    h = "hidden"
    for i, layer in enumerate(encoder.layers):
        p = f"l{i}_"
        qs = encoder.int8_layer(i) if int8 else [None] * 4
        context = attention(p + "attention", h, layer, qs[0])
        attended = linear(p + "out", context, layer.out_w, layer.out_b, qs[1])
        h = layer_norm(
            p + "ln1", op("Add", [attended, h], p + "res1"), layer.ln1_w, layer.ln1_b
        )
        up = linear(p + "up", h, layer.up_w, layer.up_b, qs[2])
        gelu = op("Gelu", [up], p + "gelu", domain=CONTRIB)  # exact (erf) GELU
        down = linear(p + "down", gelu, layer.down_w, layer.down_b, qs[3])
        h = layer_norm(
            p + "ln2", op("Add", [down, h], p + "res2"), layer.ln2_w, layer.ln2_b
        )
    op("Identity", [h], "states")
    graph = helper.make_graph(
        nodes,
        "bert_layers",
        [
            helper.make_tensor_value_info(
                "hidden", TensorProto.FLOAT, ["batch", "length", width]
            ),
            helper.make_tensor_value_info(
                "mask", TensorProto.BOOL, ["batch", "length"]
            ),
        ],
        [
            helper.make_tensor_value_info(
                "states", TensorProto.FLOAT, ["batch", "length", width]
            )
        ],
        initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(CONTRIB, 1)],
    )
    model.ir_version = 8
    return model
