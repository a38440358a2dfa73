"""Running a graph's PyTorch module, on the CPU or on CUDA."""
from __future__ import annotations

import sys

import numpy as np

from archc.errors import RuntimeFailure
from archc.ir import Graph


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
    import torch

    from archc.lowering.torch import build_module

    dev = torch_device(device, allow_fallback)
    module = build_module(graph, seed=seed).eval().to(dev)
    args = [torch.from_numpy(np.ascontiguousarray(feeds[n])).to(dev) for n in graph.inputs]
    with torch.no_grad():
        out = module(*args)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return [o.detach().cpu().numpy() for o in outs], dev
