"""Fuzz cases for archc: mutated specs and ONNX models, run in-process and classified.

Shared by the long campaign (``tools/fuzz.py``) and the property-based tests
(``tests/test_fuzz.py``). A case is made from a seed input and a ``random.Random``
(so a campaign case is reproduced from its number alone, and hypothesis drives the
same mutators through :func:`hypothesis.strategies.randoms`), then run through the
frontend and the lint/build pipeline in this process under a wall-clock bound.

Outcomes (:data:`OUTCOMES`): ``ok``; ``located`` (an archc error whose every
diagnostic names the place: ``file:line:col`` for a spec, the ONNX node for a model);
``file_only`` (an archc error naming only the file: a model that cannot be decoded or
checked as a whole); ``unlocated`` (an archc error without a place); ``traceback``
(any other exception); ``hang`` (over the time bound); ``memory`` (MemoryError, or a
worker killed by its memory limit).
"""
from __future__ import annotations

import copy
import math
import os
import random
import signal
import string
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

OUTCOMES = ("ok", "located", "file_only", "unlocated", "traceback", "hang", "memory")
#: outcomes that are bugs: the campaign's exit status and the tests fail on any of them
BAD = ("unlocated", "traceback", "hang", "memory")


# -- running one case ----------------------------------------------------------------------

class CaseTimeout(BaseException):
    """Raised by the wall-clock alarm; a BaseException so no ``except Exception`` swallows it."""


@contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Raise :class:`CaseTimeout` in the main thread after ``seconds`` (SIGALRM)."""
    def expire(signum, frame):
        raise CaseTimeout(f"over {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Result:
    outcome: str
    detail: str = ""


def classify_error(exc: BaseException, kind: str) -> Result:
    """The outcome of an exception raised by a case of ``kind`` ('spec' or 'onnx')."""
    from archc.errors import ArchcError

    if isinstance(exc, CaseTimeout):
        return Result("hang", str(exc))
    if isinstance(exc, MemoryError):
        return Result("memory", "MemoryError")
    if not isinstance(exc, ArchcError):
        return Result("traceback", "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-3000:])
    text = str(exc)
    diagnostics = exc.diagnostics or []
    if not diagnostics or any(d.location is None for d in diagnostics):
        return Result("unlocated", text)
    if kind == "spec":
        return Result("located" if all(d.location.line > 0 for d in diagnostics) else "unlocated", text)
    return Result("located" if all(d.node or d.location.line > 0 for d in diagnostics) else "file_only", text)


def run_case(kind: str, payload: bytes, name: str, workdir: str, seconds: float = 10.0,
             build: bool = True) -> Result:
    """Write the case into ``workdir`` (as ``name``), run it, classify what happened."""
    path = os.path.join(workdir, name)
    with open(path, "wb") as fh:
        fh.write(payload)
    try:
        with time_bound(seconds):
            graph = _frontend(kind, path)
            _pipeline(graph, build, _elaborator(kind, path))
    except BaseException as exc:  # noqa: BLE001 - classifying every exception is the point
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return classify_error(exc, kind)
    return Result("ok")


def preload() -> None:
    """Import everything a case may use, so no case is charged for (or interrupted in) an import."""
    from onnx.reference import ReferenceEvaluator  # noqa: F401

    import archc.analysis.skips  # noqa: F401
    import archc.frontends.onnx  # noqa: F401
    import archc.frontends.yaml  # noqa: F401
    import archc.ops.weights  # noqa: F401
    import archc.lowering.onnx  # noqa: F401
    import archc.lowering.torch  # noqa: F401


def prepare_workdir(workdir: str) -> None:
    """Give a case folder what the shipped specs include (``specs/lib``)."""
    import shutil

    target = os.path.join(workdir, "lib")
    if (SPECS / "lib").is_dir() and not os.path.isdir(target):
        shutil.copytree(SPECS / "lib", target)


def _frontend(kind: str, path: str):
    if kind == "spec":
        from archc.frontends.yaml import load_spec

        return load_spec(path)
    from archc.frontends.onnx import load_onnx

    return load_onnx(path)


#: graphs with more parameters than this are not built in-process (a campaign worker builds
#: everything under its memory limit; the test suite keeps its own process small)
BUILD_PARAM_LIMIT = 4_000_000


def _elaborator(kind: str, path: str):
    """For a spec, what ``archc build --target torch`` elaborates it again with (other parameter values)."""
    if kind != "spec":
        return None
    from archc.frontends.yaml import load_spec

    return lambda params: load_spec(path, dict(params))


def _pipeline(graph, build: bool, elaborate=None) -> None:
    """What ``archc lint`` and ``archc build`` do with a graph, in-process (``elaborate``: the spec's
    other elaborations, which the PyTorch source tries other widths with)."""
    from archc.analysis.skips import analyze

    analyze(graph)
    if not build or _param_count(graph) > BUILD_PARAM_LIMIT:
        return
    from archc.ops.weights import initial_weights
    from archc.lowering.onnx import to_onnx
    from archc.lowering.torch import generate_source

    if not graph.weights:
        graph.weights = initial_weights(graph, 0)
    to_onnx(graph)
    compile(generate_source(graph, elaborate=elaborate), "<generated>", "exec")


def _param_count(graph) -> int:
    from archc.ops.weights import param_entries

    return sum(math.prod(int(d) for d in spec.shape) for _, _, _, spec in param_entries(graph))


# -- specs ---------------------------------------------------------------------------------

SMALL_SPECS = {
    "chain.yaml": """\
name: chain
params: {width: 8}
inputs: {x: [N, 3, 16, 16]}
nodes:
  - {name: conv, op: conv, out_channels: width, kernel_size: 3, padding: 1}
  - {name: bn, op: batchnorm}
  - {name: relu, op: relu}
  - {name: pool, op: global_avgpool}
  - {op: flatten}
  - {name: fc, op: linear, out_features: 4}
""",
    "residual.yaml": """\
name: residual
params: {planes: 8, blocks: 2}
inputs: {x: [N, 8, 8, 8]}
blocks:
  basic:
    params: {planes: null, stride: 1}
    nodes:
      - {name: conv1, op: conv, out_channels: planes, kernel_size: 3, stride: stride, padding: 1, bias: false}
      - {name: relu, op: relu}
      - {name: conv2, op: conv, out_channels: planes, kernel_size: 3, padding: 1, bias: false}
      - {name: proj, op: conv, in: x, out_channels: planes, kernel_size: 1, stride: stride, bias: false,
         if: "stride != 1 or channels(x) != planes", else: x}
      - {name: add, op: add, in: [conv2, proj], expect: residual}
nodes:
  - {name: layer1, block: basic, repeat: blocks, planes: planes}
  - {name: layer2, block: basic, repeat: 1, planes: planes * 2, overrides: {0: {stride: 2}}}
  - {op: global_avgpool}
""",
    "mlp.yaml": """\
name: mlp
params: {hidden: 16, depth: 2}
let: {half: hidden // 2}
inputs: {x: [N, 10]}
nodes:
  - {name: fc1, op: linear, out_features: hidden}
  - {name: act, op: gelu}
  - {name: fc2, op: linear, out_features: half}
  - {name: skip, op: linear, in: x, out_features: half}
  - {name: sum, op: add, in: [fc2, skip]}
  - {name: cat, op: concat, in: [sum, skip], dim: 1}
  - {name: out, op: linear, out_features: 3}
""",
}

#: shipped specs cheap enough to mutate in the test suite (a few tens of ms each)
QUICK_SHIPPED = ("resnet18.yaml", "highway.yaml", "gnmt_encoder.yaml", "unet.yaml")


def spec_seeds(quick: bool = False) -> list[tuple[str, str]]:
    """(file name, text) of the seed specs: the small ones, and the shipped specs."""
    names = QUICK_SHIPPED if quick else sorted(p.name for p in SPECS.glob("*.yaml"))
    return [*SMALL_SPECS.items(), *((n, (SPECS / n).read_text()) for n in names)]


NUMBERS = (0, -1, -7, 1, 2 ** 31, 2 ** 63, 2 ** 64, -(2 ** 63) - 1, 10 ** 300, 10 ** 9, 1e308, -1e308,
           math.inf, -math.inf, math.nan, 0.5, -0.0, 3.7, 1e-300)
STRINGS = ("", " ", "x", "N", "x[*]", "9**9**9", "((9**64)**64)**64", "'%9999999999d' % 1",
           "[[0]*100000]*100000", "(-1) ** 0.5", "not " * 300 + "1", "-" * 500 + "1", "channels(x)",
           "width * 2", "1/0", "__import__('os')", "a.b.c", "layer1.0.conv1", "same", "valid",
           "\u00e9\u4e2d", "\\x00", "{a: 1}", "[1, 2", "*alias", "&anchor", "!!python/object:os.system",
           "relu", "conv", "linear", "add", "concat", "input", "x.y", "../etc/passwd", "/dev/zero")


def _random_string(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(STRINGS)
    alphabet = string.ascii_letters + string.digits + "_.*-+/()[]{}:, '\"#&!%\n\t"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """Random YAML-representable data: scalars, lists, mappings."""
    pick = rng.random()
    if depth < 3 and pick < 0.15:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if depth < 3 and pick < 0.3:
        return {_random_string(rng) if rng.random() < 0.3 else rng.choice(_KEYS): random_value(rng, depth + 1)
                for _ in range(rng.randint(0, 4))}
    if pick < 0.55:
        return rng.choice(NUMBERS)
    if pick < 0.65:
        return rng.choice((True, False, None))
    return _random_string(rng)


_KEYS = ("name", "op", "in", "nodes", "blocks", "params", "inputs", "outputs", "repeat", "block", "if", "else",
         "let", "include", "profiles", "overrides", "expect", "out_channels", "kernel_size", "stride", "padding",
         "dilation", "groups", "out_features", "dim", "doc", "bias", "scale_factor", "onnx_node")


def _slots(data: Any, path: tuple = ()) -> list[tuple]:
    """Every (container path, key) in a parsed document."""
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.append(path + (k,))
            out.extend(_slots(v, path + (k,)))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out.append(path + (i,))
            out.extend(_slots(v, path + (i,)))
    return out


def _strings(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [s for k, v in data.items() for s in ([k] if isinstance(k, str) else []) + _strings(v)]
    if isinstance(data, list):
        return [s for v in data for s in _strings(v)]
    return [data] if isinstance(data, str) else []


def _container(data: Any, path: tuple) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


def _mutate_data(data: Any, rng: random.Random) -> Any:
    slots = _slots(data)
    if not slots:
        return random_value(rng)
    path = rng.choice(slots)
    holder, key = _container(data, path), path[-1]
    action = rng.choice(("delete", "type", "number", "reference", "string", "random", "duplicate", "insert"))
    if action == "delete":
        del holder[key]
    elif action == "type":
        value = holder[key]
        holder[key] = rng.choice([v for v in ([value], {"k": value}, str(value), 1, 1.5, None, True)
                                  if type(v) is not type(value)])
    elif action == "number":
        holder[key] = rng.choice(NUMBERS)
    elif action == "reference":
        names = _strings(data)
        holder[key] = rng.choice(names) if names and rng.random() < 0.7 else _random_string(rng)
    elif action == "string":
        holder[key] = _random_string(rng)
    elif action == "random":
        holder[key] = random_value(rng)
    elif action == "duplicate" and isinstance(holder, list):
        holder.insert(rng.randint(0, len(holder)), copy.deepcopy(holder[key]))
    elif isinstance(holder[key], dict):
        holder[key][rng.choice(_KEYS)] = random_value(rng)
    else:
        holder[key] = random_value(rng)
    return data


_FRAGMENTS = ("a: &a [*a]", "x: !!int abc", "x: !!float abc", "x: !!bool maybe", "\0", "x: " + "9" * 300,
              "bomb: &b [&c [1, 1, 1, 1, 1, 1, 1, 1, 1], *c, *c, *c, *c, *c, *c, *c, *c]",
              "include: /dev/zero", "include: ../../../../etc/passwd", "- {name: n, op: relu", "  : :",
              "nodes: []", "inputs: {}", "key: [1, 2, {3: 4}]", "\t", "---\n---", "? [complex key]\n: 1",
              "%YAML 1.1", "!!binary aGVsbG8=", "x: !!set {a, b}")


def _mutate_text(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    action = rng.choice(("truncate", "drop_line", "insert", "flip", "swap_lines"))
    if action == "truncate":
        return text[: rng.randint(0, len(text))]
    if action == "drop_line" and lines:
        del lines[rng.randrange(len(lines))]
    elif action == "insert":
        lines.insert(rng.randint(0, len(lines)), rng.choice(_FRAGMENTS))
    elif action == "flip" and text:
        i = rng.randrange(len(text))
        return text[:i] + rng.choice(string.printable) + text[i + 1:]
    elif action == "swap_lines" and len(lines) > 1:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines) + "\n"


def mutate_spec(text: str, rng: random.Random) -> str:
    """One to three mutations of a spec: on its data (most cases) or on its text."""
    if rng.random() < 0.05:
        return yaml.safe_dump(random_value(rng), sort_keys=False)
    if rng.random() < 0.25:
        return _mutate_text(text, rng)
    data = yaml.safe_load(text)
    for _ in range(rng.randint(1, 3)):
        data = _mutate_data(data, rng)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10 ** 6)


def spec_case(seeds: list[tuple[str, str]], rng: random.Random) -> tuple[str, bytes]:
    """(file name, bytes) of one mutated spec."""
    name, text = rng.choice(seeds)
    return name, mutate_spec(text, rng).encode("utf-8", "surrogatepass")


# -- ONNX models -----------------------------------------------------------------------------

def _onnx_seeds() -> dict[str, Any]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def model(nodes, inputs, outputs, inits=(), opset=17):
        graph = helper.make_graph(nodes, "g", inputs, outputs,
                                  initializer=[numpy_helper.from_array(np.asarray(v), n) for n, v in inits])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)

    f = TensorProto.FLOAT
    r = np.random.default_rng(0)
    x4 = helper.make_tensor_value_info("x", f, ["N", 4, 8, 8])
    convnet = model(
        [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="/layer1/conv1/Conv", pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c1"], ["r1"], name="/layer1/relu/Relu"),
         helper.make_node("Conv", ["r1", "w2"], ["c2"], name="/layer1/conv2/Conv", pads=[1, 1, 1, 1]),
         helper.make_node("Add", ["c2", "x"], ["a"], name="/layer1/Add"),
         helper.make_node("GlobalAveragePool", ["a"], ["p"], name="/pool/GlobalAveragePool"),
         helper.make_node("Flatten", ["p"], ["fl"], name="/Flatten"),
         helper.make_node("Gemm", ["fl", "wf", "bf"], ["y"], name="/fc/Gemm", transB=1)],
        [x4], [helper.make_tensor_value_info("y", f, ["N", 3])],
        [("w1", r.standard_normal((4, 4, 3, 3), dtype=np.float32)), ("b1", np.zeros(4, np.float32)),
         ("w2", r.standard_normal((4, 4, 3, 3), dtype=np.float32)),
         ("wf", r.standard_normal((3, 4), dtype=np.float32)), ("bf", np.zeros(3, np.float32))])
    shapes = model(
        [helper.make_node("Shape", ["x"], ["s"], name="shape"),
         helper.make_node("Gather", ["s", "zero"], ["n"], name="batch", axis=0),
         helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"], name="unsq"),
         helper.make_node("Gather", ["s", "two"], ["h"], name="height", axis=0),
         helper.make_node("Div", ["h", "two"], ["h2"], name="half"),
         helper.make_node("Mul", ["h2", "two"], ["hh"], name="double"),
         helper.make_node("Unsqueeze", ["hh", "zero1"], ["hh1"], name="unsq2"),
         helper.make_node("Concat", ["n1", "minus1", "hh1"], ["target"], name="cat", axis=0),
         helper.make_node("Reshape", ["x", "target"], ["rs"], name="reshape"),
         helper.make_node("ReduceMean", ["rs"], ["y"], name="mean", axes=[1], keepdims=0)],
        [x4], [helper.make_tensor_value_info("y", f, ["N", 8])],
        [("zero", np.array(0, np.int64)), ("two", np.array(2, np.int64)), ("zero1", np.array([0], np.int64)),
         ("minus1", np.array([-1], np.int64))], opset=13)
    x2 = helper.make_tensor_value_info("x", f, ["N", 6, 8])
    attention = model(
        [helper.make_node("MatMul", ["x", "wq"], ["q"], name="/attn/q/MatMul"),
         helper.make_node("MatMul", ["x", "wk"], ["k"], name="/attn/k/MatMul"),
         helper.make_node("Transpose", ["k"], ["kt"], name="/attn/Transpose", perm=[0, 2, 1]),
         helper.make_node("MatMul", ["q", "kt"], ["s"], name="/attn/MatMul"),
         helper.make_node("Softmax", ["s"], ["p"], name="/attn/Softmax", axis=-1),
         helper.make_node("MatMul", ["p", "x"], ["o"], name="/attn/MatMul_1"),
         helper.make_node("Add", ["o", "x"], ["res"], name="/Add"),
         helper.make_node("LayerNormalization", ["res", "g", "b"], ["y"], name="/norm/LayerNorm", axis=-1)],
        [x2], [helper.make_tensor_value_info("y", f, ["N", 6, 8])],
        [("wq", r.standard_normal((8, 8), dtype=np.float32)), ("wk", r.standard_normal((8, 8), dtype=np.float32)),
         ("g", np.ones(8, np.float32)), ("b", np.zeros(8, np.float32))])
    folding = model(
        [helper.make_node("Constant", [], ["c"], name="const", value=numpy_helper.from_array(
            np.arange(8, dtype=np.float32).reshape(1, 8), "c")),
         helper.make_node("Tile", ["c", "reps"], ["t"], name="tile"),
         helper.make_node("ConstantOfShape", ["shape"], ["z"], name="zeros",
                          value=numpy_helper.from_array(np.array([1.0], np.float32), "v")),
         helper.make_node("Expand", ["c", "shape"], ["e"], name="expand"),
         helper.make_node("Mul", ["t", "z"], ["m"], name="mul"),
         helper.make_node("Add", ["m", "e"], ["me"], name="add_const"),
         helper.make_node("MatMul", ["x", "me"], ["y0"], name="matmul"),
         helper.make_node("Relu", ["y0"], ["y"], name="relu")],
        [helper.make_tensor_value_info("x", f, ["N", 2])], [helper.make_tensor_value_info("y", f, ["N", 8])],
        [("reps", np.array([2, 1], np.int64)), ("shape", np.array([2, 8], np.int64))])
    seeds = {"convnet.onnx": convnet, "shapes.onnx": shapes, "attention.onnx": attention, "folding.onnx": folding}
    for m in seeds.values():
        onnx.checker.check_model(m)
    return seeds


_SEEDS: dict[str, Any] | None = None


def onnx_seeds() -> dict[str, Any]:
    """Small, valid ONNX models built with onnx.helper (cached)."""
    global _SEEDS
    if _SEEDS is None:
        _SEEDS = _onnx_seeds()
    return _SEEDS


HUGE_DIMS = (0, -1, 2 ** 62, 2 ** 31, 10 ** 9, 1)


def _dims_of(vi) -> list:
    t = vi.type.tensor_type
    return list(t.shape.dim) if t.HasField("shape") else []


def _mutate_model(model, rng: random.Random) -> None:
    """One structural mutation, in place."""
    from onnx import AttributeProto, TensorProto, helper, numpy_helper

    g = model.graph
    nodes = list(g.node)
    action = rng.choice(("drop_node", "drop_input", "dangling", "cycle", "dims", "out_dims", "op_type",
                         "domain", "attr_type", "drop_attr", "drop_init", "drop_graph_input", "drop_output",
                         "bomb", "external", "div_zero", "huge_shape", "opset", "rename_output", "dtype"))
    if action == "drop_node" and nodes:
        del g.node[rng.randrange(len(nodes))]
    elif action == "drop_input" and nodes:
        n = rng.choice(nodes)
        if n.input:
            del n.input[rng.randrange(len(n.input))]
    elif action == "dangling" and nodes:
        n = rng.choice(nodes)
        if n.input:
            n.input[rng.randrange(len(n.input))] = rng.choice(("ghost", "", "y", n.output[0] if n.output else "o"))
    elif action == "cycle" and len(nodes) > 1:
        i, j = sorted(rng.sample(range(len(nodes)), 2))
        if nodes[i].input and nodes[j].output:
            nodes[i].input[rng.randrange(len(nodes[i].input))] = nodes[j].output[0]
    elif action in ("dims", "out_dims"):
        vis = list(g.input if action == "dims" else g.output)
        dims = _dims_of(rng.choice(vis)) if vis else []
        if dims:
            d = rng.choice(dims)
            if rng.random() < 0.2:
                d.dim_param = _random_string(rng)
            else:
                d.dim_value = rng.choice(HUGE_DIMS)
    elif action == "op_type" and nodes:
        rng.choice(nodes).op_type = rng.choice(("Foo", "Gather", "Tile", "Loop", "If", "Scan", "Conv", "Einsum",
                                                "Resize", "Expand", "", "Custom"))
    elif action == "domain" and nodes:
        rng.choice(nodes).domain = rng.choice(("com.example", "ai.onnx.ml", "com.microsoft", "x" * 40))
    elif action == "attr_type" and nodes:
        n = rng.choice(nodes)
        name = n.attribute[rng.randrange(len(n.attribute))].name if n.attribute and rng.random() < 0.7 \
            else rng.choice(("axis", "pads", "strides", "perm", "to", "value", "kernel_shape", "group"))
        for k in range(len(n.attribute) - 1, -1, -1):
            if n.attribute[k].name == name:
                del n.attribute[k]
        n.attribute.append(helper.make_attribute(name, rng.choice((
            "text", 1.5, -3, 2 ** 62, [1, 2, 3], [1.5], ["a"], [0] * 9, [-(2 ** 40)] * 4,
            numpy_helper.from_array(np.zeros((2, 2), np.float32))))))
    elif action == "drop_attr" and nodes:
        n = rng.choice(nodes)
        if n.attribute:
            del n.attribute[rng.randrange(len(n.attribute))]
    elif action == "drop_init" and g.initializer:
        del g.initializer[rng.randrange(len(g.initializer))]
    elif action == "drop_graph_input" and g.input:
        del g.input[rng.randrange(len(g.input))]
    elif action == "drop_output" and g.output:
        del g.output[rng.randrange(len(g.output))]
    elif action == "rename_output" and g.output:
        g.output[rng.randrange(len(g.output))].name = rng.choice(("x", "ghost", ""))
    elif action == "dtype" and g.input:
        g.input[0].type.tensor_type.elem_type = rng.choice((TensorProto.INT64, TensorProto.STRING,
                                                            TensorProto.BFLOAT16, TensorProto.BOOL, 0, 99))
    elif action == "opset":
        del model.opset_import[:]
        model.opset_import.append(helper.make_opsetid("", rng.choice((1, 7, 11, 13, 18, 21, 99))))
    elif action == "bomb":
        _insert_bomb(model, rng)
    elif action == "external" and g.initializer:
        t = rng.choice(list(g.initializer))
        t.ClearField("raw_data")
        t.ClearField("float_data")
        t.ClearField("int64_data")
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        for key, value in (("location", rng.choice(("../../../../etc/passwd", "/etc/hostname", "missing.bin",
                                                    "sub/../../x.bin", "/dev/zero"))),
                           ("offset", str(rng.choice((0, 4, -1, 2 ** 62)))),
                           ("length", str(rng.choice((4, 2 ** 40))))):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
    elif action == "div_zero":
        _insert_shape_arith(model, rng)
    elif action == "huge_shape":
        for t in g.initializer:
            if t.data_type == TensorProto.INT64 and t.dims in ([1], [2], []) and rng.random() < 0.7:
                values = [rng.choice((0, -1, 2 ** 62, 10 ** 9, 30000)) for _ in range(max(1, math.prod(t.dims)))]
                t.CopyFrom(numpy_helper.from_array(np.array(values, np.int64).reshape(tuple(t.dims)), t.name))
    _ = AttributeProto  # (the attribute types above are built by make_attribute)


def _insert_bomb(model, rng: random.Random) -> None:
    """A constant-folding bomb feeding a new graph output."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    big = rng.choice((10 ** 9, 30000, 2 ** 31, 10 ** 5))
    tag = f"bomb{len(g.node)}"
    g.initializer.append(numpy_helper.from_array(np.ones((1, 1), np.float32), f"{tag}_c"))
    g.initializer.append(numpy_helper.from_array(np.array([big, big], np.int64), f"{tag}_s"))
    kind = rng.choice(("Tile", "Expand", "ConstantOfShape", "MatMul", "Range"))
    if kind == "Range":
        g.initializer.append(numpy_helper.from_array(np.array(0, np.int64), f"{tag}_0"))
        g.initializer.append(numpy_helper.from_array(np.array(big * big, np.int64), f"{tag}_n"))
        g.initializer.append(numpy_helper.from_array(np.array(1, np.int64), f"{tag}_1"))
        g.node.append(helper.make_node("Range", [f"{tag}_0", f"{tag}_n", f"{tag}_1"], [f"{tag}_b"], name=tag))
        g.node.append(helper.make_node("Cast", [f"{tag}_b"], [f"{tag}_big"], name=tag + "_cast",
                                       to=TensorProto.FLOAT))
    elif kind == "ConstantOfShape":
        g.node.append(helper.make_node("ConstantOfShape", [f"{tag}_s"], [f"{tag}_big"], name=tag))
    elif kind == "MatMul":
        g.node.append(helper.make_node("Expand", [f"{tag}_c", f"{tag}_s"], [f"{tag}_e"], name=tag + "_expand"))
        g.node.append(helper.make_node("MatMul", [f"{tag}_e", f"{tag}_e"], [f"{tag}_big"], name=tag))
    else:
        g.node.append(helper.make_node(kind, [f"{tag}_c", f"{tag}_s"], [f"{tag}_big"], name=tag))
    x = g.input[0].name if g.input else "x"
    g.node.append(helper.make_node("Add", [x, f"{tag}_big"], [f"{tag}_y"], name=tag + "_use"))
    g.output.append(helper.make_tensor_value_info(f"{tag}_y", TensorProto.FLOAT, [None] * _rank(g, 2)))


def _rank(g, least: int = 0) -> int:
    """The rank of the graph's first input (at least ``least``)."""
    return max(least, len(_dims_of(g.input[0])) if g.input else 0)


def _insert_shape_arith(model, rng: random.Random) -> None:
    """Shape arithmetic over the first input's shape: a division by zero, or a 2^62 dim."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    if not g.input:
        return
    x = g.input[0].name
    tag = f"sa{len(g.node)}"
    divisor = rng.choice((0, 2 ** 62, -1))
    g.initializer.append(numpy_helper.from_array(np.array([divisor], np.int64), f"{tag}_d"))
    g.node.append(helper.make_node("Shape", [x], [f"{tag}_s"], name=tag + "_shape"))
    op = rng.choice(("Div", "Mul"))
    g.node.append(helper.make_node(op, [f"{tag}_s", f"{tag}_d"], [f"{tag}_q"], name=tag + "_" + op.lower()))
    g.node.append(helper.make_node("Reshape", [x, f"{tag}_q"], [f"{tag}_y"], name=tag + "_reshape"))
    g.output.append(helper.make_tensor_value_info(f"{tag}_y", TensorProto.FLOAT, [None] * _rank(g)))


def mutate_onnx(model, rng: random.Random) -> bytes:
    """One to three structural mutations, then sometimes a byte-level one (truncation, bit flips)."""
    model = copy.deepcopy(model)
    for _ in range(rng.randint(1, 3)):
        _mutate_model(model, rng)
    data = model.SerializeToString()
    pick = rng.random()
    if pick < 0.1 and data:
        data = data[: rng.randrange(len(data))]
    elif pick < 0.2 and data:
        buf = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        data = bytes(buf)
    elif pick < 0.22:
        data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    return data


def onnx_case(rng: random.Random) -> tuple[str, bytes]:
    """(file name, bytes) of one mutated ONNX model."""
    seeds = onnx_seeds()
    name = rng.choice(sorted(seeds))
    return name, mutate_onnx(seeds[name], rng)


CASE_MAKERS: dict[str, Callable[[random.Random], tuple[str, bytes]]] = {
    "spec": lambda rng: spec_case(spec_seeds(), rng),
    "onnx": onnx_case,
}


def make_case(kind: str, number: int, quick: bool = False) -> tuple[str, bytes]:
    """Case ``number`` of a campaign: the same bytes every time for the same number."""
    rng = random.Random(f"{kind}:{number}")
    if kind == "spec":
        return spec_case(spec_seeds(quick), rng)
    return onnx_case(rng)


if __name__ == "__main__":  # pragma: no cover - a quick look at one case
    kind, number = sys.argv[1], int(sys.argv[2])
    print(make_case(kind, number)[1].decode("utf-8", "replace"))
