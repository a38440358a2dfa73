"""Op definitions, one module per family; importing this package registers them all."""
from archc.ops import registry
from archc.ops.base import REQUIRED, Attr, OpDef, ParamSpec
from archc.ops.registry import get, lookup, register

# Built-in op families (each module registers its ops on import).
from archc.ops import activation, conv, graph_io, linear, merge, norm, pool, shape  # noqa: E402,F401
from archc.ops import attention, dropout, elementwise, embedding, learned, onnx_node, resize, rnn  # noqa: E402,F401
# One op per module from here on.
from archc.ops import adaptive_pool, amax, causal_mask, channel_shuffle, clamp, crop, elu, glu, hardsigmoid, hardtanh, instancenorm, layernorm2d, mish, pad, pad_to, parameter, pixel_shuffle, pixel_unshuffle, positions, pow, relative_position, roll, rotary_embedding, rsqrt, softplus, sqrt, stack, sum, window_mask  # noqa: E402,F401,E501

__all__ = ["Attr", "OpDef", "ParamSpec", "REQUIRED", "get", "lookup", "register", "registry"]
