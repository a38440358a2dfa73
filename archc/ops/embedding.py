"""Lookup tables: integer token ids to learned vectors."""
from __future__ import annotations

from archc.errors import ShapeError
from archc.ir.types import TensorType
from archc.ops.base import Attr, OpDef, ParamSpec
from archc.ops.registry import register


@register
class Embedding(OpDef):
    name = "embedding"
    always_learned = True  # a weight whatever the sizes
    doc = "Maps integer ids (any shape) to rows of a learned (num_embeddings, embedding_dim) table."
    attrs = {
        "num_embeddings": Attr("int", doc="size of the vocabulary (ids are 0 .. num_embeddings - 1)", min=1),
        "embedding_dim": Attr("int", doc="length of each vector", min=1),
    }
    role = "layer"
    feature_axis = -1

    def infer(self, node, ins):
        x = ins[0]
        if x.dtype not in ("int64", "int32"):
            raise ShapeError(f"expected integer token ids (int64), got {x.dtype} {x}; declare the input "
                             "as {shape: [...], dtype: int64}")
        a = node.attrs
        if a["num_embeddings"] < 1 or a["embedding_dim"] < 1:
            raise ShapeError("num_embeddings and embedding_dim must be positive")
        return [TensorType((*x.shape, a["embedding_dim"]), "float32")]

    def index_bounds(self, node):
        return {0: node.attrs["num_embeddings"]}

    def params(self, node, ins):
        a = node.attrs
        # nn.Embedding initialises its table from N(0, 1).
        return {"weight": ParamSpec((a["num_embeddings"], a["embedding_dim"]), "normal", std=1.0)}

    def torch_module(self, node, ins):
        a = node.attrs
        return f"nn.Embedding({a['num_embeddings']}, {a['embedding_dim']})"

    def onnx(self, emit, node, inputs, ins):
        return emit.add_node("Gather", [emit.param("weight"), inputs[0]], axis=0)
