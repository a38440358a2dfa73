#!/usr/bin/env python3
"""Check archc's specs against torchvision: state_dict keys and shapes, strict loading, outputs.

Run:  python tools/check_torchvision.py [--size 64] [MODEL ...]

For each shipped spec whose architecture torchvision has, builds archc's module and
torchvision's (random weights), checks that the state_dict keys and shapes are equal,
loads torchvision's state_dict into archc's module with strict=True, and compares the
two outputs in eval mode on one random input. Exits 1 on any difference. torchvision
cannot be installed beside the CPU torch used for development here; without it the
tool says so and exits 0.
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

#: spec file -> (torchvision constructor name, keyword arguments, parameter overrides for the spec)
MODELS = {
    "resnet18": ("resnet18", {}, {}),
    "resnet34": ("resnet34", {}, {}),
    "resnet50": ("resnet50", {}, {}),
    "resnet101": ("resnet101", {}, {}),
    "resnet152": ("resnet152", {}, {}),
    "densenet121": ("densenet121", {}, {}),
    "googlenet": ("googlenet", {"aux_logits": False, "init_weights": False}, {}),
    "mobilenet_v2": ("mobilenet_v2", {}, {}),
    "vit_b16": ("vit_b_16", {}, {}),
    "regnet_y_400mf": ("regnet_y_400mf", {}, {}),
    "efficientnet_v2_s": ("efficientnet_v2_s", {}, {}),
    "swin_t": ("swin_t", {}, {}),
}
#: input sizes a spec needs whatever --size says: swin_t's stage resolutions must be multiples of
#: its 7 x 7 window (torchvision pads other sizes; the spec does not)
FIXED_SIZE = {"swin_t": 224}


def check(name: str, size: int) -> list[str]:
    """Problems found for one model (empty when it matches)."""
    import torch
    import torchvision

    from archc import load_spec
    from archc.lowering.torch import build_module

    ctor, kwargs, overrides = MODELS[name]
    size = FIXED_SIZE.get(name, size)
    spec = os.path.join(ROOT, "specs", f"{name}.yaml")
    if not os.path.exists(spec):
        return [f"{spec} is missing"]
    if name.startswith("vit"):
        kwargs = {**kwargs, "image_size": size}
    overrides = {**overrides, "image_size": size}
    graph = load_spec(spec, overrides=overrides)
    ours = build_module(graph, seed=0).eval()
    theirs = getattr(torchvision.models, ctor)(weights=None, **kwargs).eval()
    a = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    problems = [f"only in archc: {k} {a[k]}" for k in a.keys() - b.keys()]
    problems += [f"only in torchvision: {k} {b[k]}" for k in b.keys() - a.keys()]
    problems += [f"{k}: archc {a[k]} vs torchvision {b[k]}" for k in a.keys() & b.keys() if a[k] != b[k]]
    if problems:
        return problems
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y_ours, y_theirs = ours(x), theirs(x)
    err = (y_ours - y_theirs).abs().max().item()
    if not torch.allclose(y_ours, y_theirs, rtol=1e-4, atol=1e-5):
        return [f"outputs differ: max abs error {err:.3g}"]
    return []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", metavar="MODEL", help=f"some of: {', '.join(MODELS)} (default: all)")
    ap.add_argument("--size", type=int, default=64, help="input size (224 for ViT's default; must be /16 for ViT)")
    args = ap.parse_args()
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    args.models = args.models or list(MODELS)
    try:
        import torchvision  # noqa: F401
    except Exception as exc:  # ImportError, or torchvision failing to load beside this torch
        print(f"torchvision is not available ({type(exc).__name__}: {exc}); nothing to check")
        return 0
    failed = 0
    for name in args.models:
        problems = check(name, args.size)
        print(f"{name}: {'ok' if not problems else 'MISMATCH'}")
        for p in problems[:20]:
            print(f"  {p}")
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
