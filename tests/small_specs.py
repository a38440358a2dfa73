"""Overrides that shrink each shipped spec for tests, without changing its connections."""

import json

#: overrides that shrink each spec without changing its connections
SMALL = {
    "densenet121": {"growth_rate": 4, "init_features": 8, "bn_size": 2, "image_size": 64},
    "efficientnet_v2_s": {"image_size": 64, "num_classes": 10},
    "fpn_resnet50": {"width": 8, "channels": 16, "image_size": 64},
    "gnmt_encoder": {"vocab_size": 50, "hidden": 16},
    "googlenet": {"image_size": 64},
    "highway": {"in_features": 16, "width": 8},
    "hourglass": {"width": 16, "image_size": 64},
    "inception_resnet_v2": {"width_mult": 0.25},
    "llama": {"vocab_size": 100, "dim": 64, "n_layers": 2, "n_heads": 4, "multiple_of": 32},
    "mobilenet_v2": {"image_size": 64},
    "regnet_y_400mf": {"image_size": 64, "num_classes": 10},
    "resnet18": {"image_size": 64},
    "resnet34": {"image_size": 64},
    "resnet50": {"image_size": 64},
    "resnet101": {"image_size": 64},
    "resnet152": {"image_size": 64},
    "squeezenet1_1": {"image_size": 64},
    "segnet": {"width": 4, "height": 32, "image_width": 32},
    "swin_t": {"image_size": 64, "window": 2, "embed_dim": 16, "num_heads": [1, 2, 2, 4], "num_classes": 10},
    "transformer": {"d_model": 32, "nhead": 4, "dim_feedforward": 64},
    "unet": {"width": 8, "image_size": 32},
    "vit_b16": {"image_size": 32, "hidden_dim": 32, "mlp_dim": 64, "num_heads": 4},
}


def set_args(name: str) -> list[str]:
    """``SMALL[name]`` as command-line options: ``--set k=v`` each (lists as JSON)."""
    return [arg for k, v in SMALL[name].items()
            for arg in ("--set", f"{k}={json.dumps(v) if isinstance(v, list) else v}")]
