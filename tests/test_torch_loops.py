"""Repeated children written as PyTorch users write them: instances of one block named by one
pattern counting up (ViT's ``encoder_layer_0``, RegNet's ``block2-1``) are added to an
``nn.Sequential`` class in a loop, as torchvision builds them; the state_dict keys stay the spec's."""
from __future__ import annotations

import pytest
import torch
from generated_modules import assert_as_rebuilt, build_generated, class_text

from archc.pysource import UnsafeValue, numbered_name


def test_numbered_names_are_f_strings_with_the_text_around_the_number_escaped():
    i = 7
    for before, after in [("encoder_layer_", ""), ("block2-", ""), ('a{b}"c', "'x"), ("", "_tail")]:
        text = numbered_name(before, "i", after)
        assert text.startswith("f") and eval(text) == f"{before}7{after}"  # noqa: S307 - our own literal
    assert numbered_name("encoder_layer_", "i", "") == 'f"encoder_layer_{i}"'
    for before, variable in [("a\\x", "i"), ("a\n", "i"), ("a", "i + 1")]:
        with pytest.raises(UnsafeValue):
            numbered_name(before, variable, "")
    assert i == 7


def test_vit_s_encoder_layers_are_added_in_a_loop(run_archc, tmp_path):
    sets = ("image_size=32", "patch_size=8", "num_layers=3", "num_heads=2", "hidden_dim=32", "mlp_dim=48")
    module, source = build_generated(run_archc, tmp_path, "specs/vit_b16.yaml", *sets)
    stack = class_text(source, "LayerStack")
    assert stack.startswith("nn.Sequential):")
    assert "for i in range(num_layers):\n            self.add_module(\n                f\"encoder_layer_{i}\"," in stack, stack
    assert "def forward" not in stack  # (nn.Sequential's)
    model = module.VitB16().eval()
    keys = model.state_dict().keys()
    assert "encoder.layers.encoder_layer_2.mlp.0.weight" in keys and "encoder.layers.encoder_layer_3.ln_1.weight" \
        not in keys
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(model)(x), model(x))


def test_a_loop_starts_at_the_first_number_of_its_run(run_archc, tmp_path):
    # RegNet's stages: block2-0 projects, block2-1 and block2-2 are alike; one class for the four
    # stages (torchvision's AnyStage), its names made from the stage's index
    module, source = build_generated(run_archc, tmp_path, "specs/regnet_y_400mf.yaml", "num_classes=10",
                                     "image_size=64")
    stage = class_text(source, "Stage")
    assert 'f"block{stage_index}-0",' in stage and "for i in range(1, depth):" in stage
    assert 'f"block{stage_index}-{i}",' in stage and "class Stage2(" not in source
    trunk = class_text(source, "TrunkOutput")
    assert "depth=3,\n                stage_index=2," in trunk
    # the first stage, of one block, is the same class: its loop runs no times, and it leaves out
    # what only the loop's blocks read
    assert "squeeze_2: int | None = None," in stage and "squeeze=squeeze_2," in stage
    assert "Stage(\n                in_channels=in_channels,\n                groups=6," in trunk, trunk
    assert "depth=1,\n                stage_index=1,\n            )," in trunk, trunk
    keys = module.RegnetY400mf().state_dict().keys()
    assert {k.split(".")[2] for k in keys if k.startswith("trunk_output.block2.")} == {"block2-0", "block2-1",
                                                                                       "block2-2"}
    assert {k.split(".")[2] for k in keys if k.startswith("trunk_output.block4.")} == {f"block4-{i}"
                                                                                       for i in range(6)}


def test_vit_takes_its_depth(run_archc, tmp_path):
    # ViT-L/16 is ViT-B/16 with 24 layers (and wider): the encoder's loop counts num_layers
    sets = ("image_size=32", "patch_size=8", "num_layers=2", "num_heads=2", "hidden_dim=32", "mlp_dim=48")
    module, source = build_generated(run_archc, tmp_path, "specs/vit_b16.yaml", *sets)
    header = source.split("\nimport ")[0]
    assert "num_layers" in header.split("run-time arguments:")[1].split("fixed")[0]
    assert_as_rebuilt(run_archc, tmp_path, "specs/vit_b16.yaml", sets, module, "VitB16",
                      {"num_layers": 5, "hidden_dim": 48}, torch.randn(1, 3, 32, 32))
