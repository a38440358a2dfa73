"""The keys a spec may use at each level, and what each means (used for checks and hints)."""
from __future__ import annotations

from archc.ir.vocab import EXPECT_NONE, Kind

TOP_KEYS = {
    "archc": "spec language version (1)",
    "name": "model name (the generated class is named after it)",
    "doc": "free text describing the model",
    "params": "top-level parameters: name -> default value (override with --set name=value)",
    "profiles": "named sets of parameter values, chosen with --profile",
    "let": "derived values: name -> expression over params, evaluated in order",
    "include": "YAML files whose 'blocks' this spec may use: relative to this spec, or archc/NAME for the "
               "shipped block library",
    "functions": "small pure functions: name -> {args, let, return}, callable from any expression",
    "inputs": "graph inputs: name -> shape list, or {shape: [...], dtype: ...}",
    "example_dims": "example sizes of the inputs' symbolic dims (e.g. {S: 16}), used by run and verify "
                    "where --dim gives none",
    "blocks": "reusable blocks: name -> {params, let, inputs, nodes, outputs}",
    "nodes": "the model's nodes, in order",
    "sequential": "true: name the top-level nodes 0, 1, 2, ... in order, as the children of a model that is "
                  "an nn.Sequential ('name' stays their local handle)",
    "outputs": "graph outputs: a node name, a list of them, or name -> node (default: the last node); "
               "NAME[*]:PORT gives one output per repetition",
    "trust_sizes": "true: sizes that meet (add, concat) need only agree at the sizes the model runs at, as an "
                   "imported ONNX file's do (an FCN's (H//4)*4 added to H), not at every size; archc spec writes "
                   "it where a model needs it",
}

BLOCK_KEYS = {
    "doc": "free text",
    "params": "block parameters: name -> default (null means the caller must give it)",
    "let": "derived values: name -> expression, evaluated in order",
    "inputs": "names of the block's inputs (default: [x]); a last name ending in '...' takes any number",
    "nodes": "the block's nodes, in order",
    "outputs": "the block's output(s): a node name or a list (default: the last node)",
    "sequential": "true: name the block's nodes 0, 1, 2, ... in order, like nn.Sequential's children "
                  "('name' stays their local handle)",
}

NODE_KEYS = {
    "name": "the node's name (becomes the PyTorch module name)",
    "op": "a registered op",
    "block": "a block defined under 'blocks:'",
    "in": "input(s): a name or list of names (NAME:PORT one output; on a repeated node '${index}' names each "
          "repetition's own, e.g. 'parts:${index}'); default: the previous node",
    "repeat": "instantiate this node N times in series, named NAME.0 ... NAME.(N-1)",
    "parallel": "true on a repeated node: every repetition reads the node's own inputs (parallel branches, "
                "collected with NAME[*]) instead of the previous repetition's output",
    "overrides": "per-repetition field overrides: index -> {field: value}",
    "instance_name": "name pattern of each repetition, e.g. 'denselayer${index + 1}' (default NAME.index)",
    "if": "condition; when false the node is left out and its name stands for 'else'",
    "else": "what a left-out node's name stands for (default: its first input)",
    "tie": "weight tying: this node's parameter -> another node's, e.g. {weight: wte.weight} (one tensor); on a "
           "block instance, another instance (tie: enc_a) or paths inside it ({fc.weight: enc_a.fc.weight})",
    "inline": "true on a block instance: its nodes join this scope without a name level for the instance "
              "(or its repetitions)",
    "expect": "the connection kind this merge node is expected to have (checked by lint)",
    "doc": "free text",
}

#: what ``expect:`` may declare: a connection kind, or that the node holds no skip
EXPECT_KINDS = (*Kind.words(), EXPECT_NONE)

INCLUDE_KEYS = {
    "doc": "free text",
    "include": "further YAML files (relative to this file, or archc/NAME) whose 'blocks' the including spec may use",
    "functions": "small pure functions, as under a spec's 'functions:'",
    "blocks": "reusable blocks, as under a spec's 'blocks:'",
}
