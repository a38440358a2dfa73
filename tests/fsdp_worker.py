"""One rank of tests/test_fsdp.py: a generated model built on meta, sharded per block with FSDP2,
materialised, loaded and trained one SGD step on this rank's half of the batch.

Run as ``python fsdp_worker.py RANK WORLD INIT_FILE MODEL.py CLASS DATA.pt OUT.pt`` (a file-based
rendezvous: no ports, no torchrun). Rank 0 writes the global loss and the full parameters after
the step to OUT.pt.
"""
from __future__ import annotations

import importlib.util
import sys

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, set_model_state_dict
from torch.distributed.fsdp import fully_shard


def main(rank: int, world: int, init_file: str, model_file: str, class_name: str, data_file: str,
         out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    spec = importlib.util.spec_from_file_location("generated_model", model_file)
    generated = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generated)
    data = torch.load(data_file, weights_only=True)

    with torch.device("meta"):
        model = getattr(generated, class_name)()
    for block in model.block_instances():  # the recipe: every block instance, then the model
        fully_shard(block)
    model.to_empty(device="cpu")
    for block in model.block_instances():
        block.reset_parameters()
    full = StateDictOptions(full_state_dict=True, broadcast_from_rank0=False)
    set_model_state_dict(model, data["state_dict"], options=full)

    rows = slice(rank * data["src"].shape[0] // world, (rank + 1) * data["src"].shape[0] // world)
    optimizer = torch.optim.SGD(model.parameters(), lr=data["lr"])
    loss = torch.nn.functional.mse_loss(model(data["src"][rows], data["tgt"][rows]), data["target"][rows])
    loss.backward()  # FSDP2 averages the gradients over the ranks: the full batch's mean loss
    optimizer.step()
    total = loss.detach().clone()
    dist.all_reduce(total)
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:
        sharded = sorted(type(p).__name__ for p in model.parameters())
        torch.save({"loss": total / world, "state_dict": state, "parameter_types": sharded}, out_file)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:])
