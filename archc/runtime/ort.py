"""Running ONNX models on onnxruntime, on the CPU or on CUDA."""
from __future__ import annotations

import sys

import numpy as np

from archc.errors import Location, RuntimeFailure, SpecError, first_line
from archc.runtime.inputs import input_hint

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def providers_for(device: str, allow_fallback: bool = False) -> list[str]:
    """The execution providers for a device; error (or, if allowed, CPU fallback) when missing."""
    import onnxruntime as ort

    wanted = PROVIDERS[device]
    available = ort.get_available_providers()
    if wanted in available:
        return [wanted] + (["CPUExecutionProvider"] if device != "cpu" else [])
    message = (f"onnxruntime here has no {wanted} (available: {', '.join(available)}); "
               "install onnxruntime-gpu with a matching CUDA, or run with --device cpu")
    if allow_fallback:
        print(f"archc: warning: {message}; falling back to the CPU as asked", file=sys.stderr)
        return ["CPUExecutionProvider"]
    raise RuntimeFailure(message)


def run_onnx(model: bytes | str, feeds: dict[str, np.ndarray], device: str = "cpu",
             allow_fallback: bool = False) -> tuple[list[np.ndarray], list[str]]:
    """Run a model (bytes or path); returns its outputs and the providers the session used."""
    session = load_session(model, device, allow_fallback)
    return run_session(session, feeds, model), session.get_providers()


def load_session(model: bytes | str, device: str = "cpu", allow_fallback: bool = False):
    """An onnxruntime session for a model (bytes or path), on the device's providers."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # (fatal only: archc reports the errors it catches in its own format)
    ort.set_default_logger_severity(3)  # kernels warn through the default logger, in its own format
    providers = providers_for(device, allow_fallback)
    try:
        return ort.InferenceSession(model, options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own type per failure
        raise SpecError(f"onnxruntime cannot load the model: {first_line(exc)}", location=_where(model)) from None


def run_session(session, feeds: dict[str, np.ndarray], model: bytes | str = b"") -> list[np.ndarray]:
    """One run of a session (from :func:`load_session`) on ``feeds``; ``model`` names it in errors."""
    names = [o.name for o in session.get_outputs()]
    try:
        return session.run(names, feeds)
    except Exception as exc:  # noqa: BLE001 - as above
        raise SpecError(f"onnxruntime cannot run the model: {first_line(exc)}" + input_hint(feeds),
                        location=_where(model)) from None


def _where(model: bytes | str) -> Location | None:
    return Location(model) if isinstance(model, str) else None


