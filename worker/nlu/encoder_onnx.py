"""The sentence encoder on ONNX Runtime: the optional fast backend.

The graph is built here, node by node, from the arrays of a `BertEncoder` (the
same safetensors weights, the same int8 quantization), so nothing is exported or
downloaded and the numpy forward pass stays the reference it is tested against.
Token and position embeddings are looked up in numpy (the word table is 47 MB
of float32 that ONNX Runtime would otherwise copy); the graph runs the six
layers. With ``weights="int8"`` every linear layer is ``DynamicQuantizeLinear``
→ ``MatMulInteger`` → scale, which ONNX Runtime fuses into one integer kernel:
a single short sentence is bound by reading the weights, and int8 weights are a
quarter of float32's.

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


def build_graph(encoder: BertEncoder) -> Any:
    """The encoder's layers as an ONNX ``ModelProto``: ``hidden`` (batch, length,
    width) float and ``mask`` (batch, length) bool in, ``states`` out."""
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
    size = width // heads
    int8 = bool(encoder.scales)
    const("heads_shape", np.array([0, 0, heads, size], np.int64))
    const("width_shape", np.array([0, 0, width], np.int64))
    const("unsqueeze_axes", np.array([1, 2], np.int64))
    const("one", np.float32(1.0))
    const("half", np.float32(0.5))
    const("sqrt2", np.float32(np.sqrt(2.0)))
    const("masked", np.float32(-1e9))
    const("scale", np.float32(1.0 / np.sqrt(size)))
    # the attention bias: 0 for real tokens, -1e9 for padding, (batch, 1, 1, length)
    op("Cast", ["mask"], "mask_f", to=TensorProto.FLOAT)
    op("Sub", ["one", "mask_f"], "padding")
    op("Mul", ["padding", "masked"], "bias_2d")
    op("Unsqueeze", ["bias_2d", "unsqueeze_axes"], "bias")

    def linear(name: str, x: str, weight: np.ndarray, bias: np.ndarray, q: Any) -> str:
        const(f"{name}_b", bias)
        if q is None:
            product = op("MatMul", [x, const(f"{name}_w", weight)], f"{name}_mm")
        else:
            quantized, scales = q
            op("DynamicQuantizeLinear", [x], f"{name}_xq")
            nodes[-1].output.extend([f"{name}_xs", f"{name}_xz"])
            op(
                "MatMulInteger",
                [f"{name}_xq", const(f"{name}_wq", quantized), f"{name}_xz"],
                f"{name}_int",
            )
            op("Cast", [f"{name}_int"], f"{name}_float", to=TensorProto.FLOAT)
            op("Mul", [f"{name}_xs", const(f"{name}_ws", scales)], f"{name}_scale")
            product = op("Mul", [f"{name}_float", f"{name}_scale"], f"{name}_mm")
        return op("Add", [product, f"{name}_b"], name)

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
        qkv = linear(p + "qkv", h, layer.qkv_w, layer.qkv_b, qs[0])
        parts = [p + "q", p + "k", p + "v"]
        nodes.append(helper.make_node("Split", [qkv], parts, axis=-1))
        q, k, v = (op("Reshape", [x, "heads_shape"], x + "4") for x in parts)
        q = op("Transpose", [q], p + "qt", perm=[0, 2, 1, 3])
        k = op("Transpose", [k], p + "kt", perm=[0, 2, 3, 1])
        v = op("Transpose", [v], p + "vt", perm=[0, 2, 1, 3])
        scores = op("MatMul", [q, k], p + "scores")
        scores = op("Mul", [scores, "scale"], p + "scaled")
        scores = op("Add", [scores, "bias"], p + "biased")
        weights = op("Softmax", [scores], p + "probs", axis=-1)
        context = op("MatMul", [weights, v], p + "context")
        context = op("Transpose", [context], p + "ct", perm=[0, 2, 1, 3])
        context = op("Reshape", [context, "width_shape"], p + "c3")
        attended = linear(p + "out", context, layer.out_w, layer.out_b, qs[1])
        h = layer_norm(
            p + "ln1", op("Add", [attended, h], p + "res1"), layer.ln1_w, layer.ln1_b
        )
        up = linear(p + "up", h, layer.up_w, layer.up_b, qs[2])
        # exact GELU, x * 0.5 * (1 + erf(x / sqrt 2)), as ONNX Runtime fuses it
        erf = op("Erf", [op("Div", [up, "sqrt2"], p + "up_s")], p + "erf")
        gelu = op("Mul", [up, op("Add", [erf, "one"], p + "erf1")], p + "gelu_x")
        gelu = op("Mul", [gelu, "half"], p + "gelu")
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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model
