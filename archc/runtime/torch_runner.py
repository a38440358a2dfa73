"""Running a graph's PyTorch module, on the CPU or on CUDA."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np

from archc.errors import RuntimeFailure, first_line
from archc.ir import Graph
from archc.runtime.inputs import input_hint

if TYPE_CHECKING:
    import torch


def torch_device(device: str, allow_fallback: bool = False) -> str:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        message = (f"torch {torch.__version__} here has no usable CUDA device "
                   f"({'a CPU-only build' if torch.version.cuda is None else 'no GPU visible'}); "
                   "run with --device cpu")
        if allow_fallback:
            print(f"archc: warning: {message}; falling back to the CPU as asked", file=sys.stderr)
            return "cpu"
        raise RuntimeFailure(message)
    return device


def run_torch(graph: Graph, feeds: dict[str, np.ndarray], device: str = "cpu", seed: int = 0,
              allow_fallback: bool = False) -> tuple[list[np.ndarray], str]:
    """Build the graph's module (eval mode), run it once; returns outputs and the device used."""
    module, dev = build_on_device(graph, device, seed, allow_fallback)
    return forward(module, graph, feeds, dev), dev


def build_on_device(graph: Graph, device: str = "cpu", seed: int = 0,
                    allow_fallback: bool = False) -> tuple["torch.nn.Module", str]:
    """The graph's module in eval mode on the device (or the CPU, where a fallback is allowed)."""
    from archc.lowering.torch import build_module

    dev = torch_device(device, allow_fallback)
    return build_module(graph, seed=seed).eval().to(dev), dev


def forward(module: "torch.nn.Module", graph: Graph, feeds: dict[str, np.ndarray], device: str) -> list[np.ndarray]:
    """One forward pass without gradients; the outputs as arrays."""
    import torch

    args = [torch.from_numpy(np.ascontiguousarray(feeds[n])).to(device) for n in graph.inputs]
    try:
        with torch.no_grad():
            out = module(*args)
    except (RuntimeError, IndexError, ValueError, TypeError) as exc:
        raise RuntimeFailure(f"the PyTorch module of '{graph.name}' fails on these inputs: {first_line(exc)}"
                             + input_hint(feeds)) from None
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return [o.detach().cpu().numpy() for o in outs]
