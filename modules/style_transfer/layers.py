"""VGG19 layer names (torch-free, so the params models can validate them at import time)."""
from __future__ import annotations

# torchvision "E" configuration: channels per conv, "M" = 2x2 max-pool.
VGG19_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                              512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


def layer_names(cfg: list[int | str] = VGG19_CFG) -> list[str]:
    """Names of the `features` indices: conv1_1, relu1_1, ..., pool1, conv2_1, ..."""
    names: list[str] = []
    block, idx = 1, 1
    for v in cfg:
        if v == "M":
            names.append(f"pool{block}")
            block, idx = block + 1, 1
        else:
            names += [f"conv{block}_{idx}", f"relu{block}_{idx}"]
            idx += 1
    return names


LAYER_NAMES = layer_names()
LAYER_INDEX = {n: i for i, n in enumerate(LAYER_NAMES)}
