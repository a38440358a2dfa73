"""Sharding-ready modules: a generated transformer sharded per block with FSDP2 trains as one process.

Two processes (gloo on CPU, file rendezvous; tests/fsdp_worker.py) build the generated model on
the meta device, apply ``fully_shard`` to each of ``model.block_instances()``, materialise it
with ``to_empty`` + ``reset_parameters``, load the same weights and take one SGD step on half
the batch each. The loss and every parameter after the step must equal one process's step on
the whole batch.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402

from archc import load_spec  # noqa: E402
from archc.lowering.torch import generate_source, module_class, state_dict_from_graph  # noqa: E402

from conftest import SPECS  # noqa: E402

WORKER = Path(__file__).with_name("fsdp_worker.py")
WORLD = 2
#: the small profile, without dropout so that one step is deterministic
SIZES = {"d_model": 32, "nhead": 2, "num_encoder_layers": 2, "num_decoder_layers": 2, "dim_feedforward": 64,
         "dropout": 0.0}


def _fsdp_missing() -> str | None:
    if not dist.is_available() or not dist.is_gloo_available():
        return "this torch build has no torch.distributed with gloo"
    try:
        from torch.distributed.fsdp import fully_shard  # noqa: F401
    except ImportError as exc:
        return f"FSDP2 (torch.distributed.fsdp.fully_shard) is not in this torch: {exc}"
    return None


@pytest.mark.slow  # two processes importing torch.distributed: ~30-50 s on 2 cores
@pytest.mark.skipif(_fsdp_missing() is not None, reason=str(_fsdp_missing()))
def test_one_fsdp2_step_sharded_per_block_equals_the_single_process_step(tmp_path):
    graph = load_spec(str(SPECS / "transformer.yaml"), overrides=SIZES)
    state = state_dict_from_graph(graph, seed=3)
    generator = torch.Generator().manual_seed(0)
    src, tgt = torch.randn(4, 5, 32, generator=generator), torch.randn(4, 6, 32, generator=generator)
    data = {"src": src, "tgt": tgt, "target": torch.randn(4, 6, 32, generator=generator), "lr": 0.5,
            "state_dict": state}

    # one process, the whole batch
    model = module_class(graph)()
    model.load_state_dict(state)
    optimizer = torch.optim.SGD(model.parameters(), lr=data["lr"])
    loss = torch.nn.functional.mse_loss(model(src, tgt), data["target"])
    loss.backward()
    optimizer.step()
    expected = {k: v.detach() for k, v in model.state_dict().items()}

    model_file, data_file, out_file = tmp_path / "model.py", tmp_path / "data.pt", tmp_path / "out.pt"
    model_file.write_text(generate_source(graph, "Transformer"))
    torch.save(data, data_file)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MASTER_", "RANK", "WORLD_SIZE", "LOCAL_"))}
    env["OMP_NUM_THREADS"] = "1"
    ranks = [subprocess.Popen([sys.executable, str(WORKER), str(rank), str(WORLD), str(tmp_path / "rendezvous"),
                               str(model_file), "Transformer", str(data_file), str(out_file)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in range(WORLD)]
    logs = []
    try:
        for proc in ranks:
            logs.append(proc.communicate(timeout=300)[0])
    finally:
        for proc in ranks:
            if proc.poll() is None:
                proc.kill()
    assert all(p.returncode == 0 for p in ranks), "\n".join(logs)

    sharded = torch.load(out_file, weights_only=True)
    assert set(sharded["parameter_types"]) == {"DTensor"}  # every parameter was sharded
    assert sharded["loss"].item() == pytest.approx(loss.item(), rel=1e-5)
    assert sharded["state_dict"].keys() == expected.keys()
    moved = 0
    for key, value in expected.items():
        torch.testing.assert_close(sharded["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)
        moved += not torch.equal(value, state[key])
    assert moved > len(expected) // 2  # the step changed the weights: the comparison means something
