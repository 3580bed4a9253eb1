"""Network types beyond plain LoRA: LoCon, LoHa and LoKr through the `lycoris-lora` library
(what kohya's sd-scripts use for them), DoRA through PEFT's `use_dora`.

The LyCORIS modules are built one per adapted layer, named exactly as kohya/LyCORIS name
them in a file (`lora_unet_down_blocks_1_..._to_q`, `lora_te1_text_model_encoder_...`), and
kept in a ModuleDict registered on the model as `lycoris`, so the model's parameters (DDP,
gradient clipping, `cast_training_params`) include them. Their `state_dict()` is the kohya
file layout (`lora_down/lora_up/alpha`, `hada_w1_a/...`, `lokr_w1/lokr_w2(_a/_b)`), which
ComfyUI and A1111/Forge load; training state uses `named_parameters()` (exact fp32 tensors).

Which layers: the target preset's layers, and for LoCon/LoHa/LoKr also every ResNet /
down/up-sampler convolution (what makes them "LoCon"): 3x3 kernels take conv_rank/conv_alpha,
1x1 kernels and linears take rank/alpha, as LyCORIS does.
"""
from __future__ import annotations

from typing import Any

LYCORIS_TYPES = ("locon", "loha", "lokr")
ATTR = "lycoris"  # the ModuleDict's name on the model
# kohya's `ss_network_module` for each type (what LoRA browsers display)
NETWORK_MODULE = {"lora": "networks.lora", "dora": "networks.lora", "locon": "lycoris.kohya",
                  "loha": "lycoris.kohya", "lokr": "lycoris.kohya"}


def kohya_name(module_name: str, part: str) -> str:
    """`down_blocks.0.resnets.0.conv1` -> `lora_unet_down_blocks_0_resnets_0_conv1`.

    transformers 5 names CLIPTextModel modules without `text_model.` (the projection model
    keeps it); files users load always have it, so it is normalised."""
    if part != "unet":
        module_name = "text_model." + module_name.removeprefix("text_model.")
    return f"lora_{part}_" + module_name.replace(".", "_")


def lycoris_class(network_type: str):
    from lycoris.modules.locon import LoConModule
    from lycoris.modules.loha import LohaModule
    from lycoris.modules.lokr import LokrModule

    return {"locon": LoConModule, "loha": LohaModule, "lokr": LokrModule}[network_type]


def dims(module: Any, params: Any) -> tuple[int, float]:
    """(rank, alpha) of one layer: conv_rank/conv_alpha on kernels larger than 1x1."""
    import torch

    if isinstance(module, torch.nn.Conv2d) and tuple(module.kernel_size) != (1, 1):
        return params.conv_rank or params.rank, params.conv_alpha or params.alpha
    return params.rank, params.alpha


def add_lycoris(model: Any, names: list[str], part: str, params: Any) -> Any:
    """Wrap the exact layers `names` with LyCORIS modules; returns the ModuleDict."""
    import torch

    cls = lycoris_class(params.network_type)
    layers = dict(model.named_modules())
    net = torch.nn.ModuleDict()
    for name in names:
        layer = layers[name]
        rank, alpha = dims(layer, params)
        extra = {"factor": params.lokr_factor} if params.network_type == "lokr" else {}
        net[kohya_name(name, part)] = cls(kohya_name(name, part), layer, multiplier=1.0, lora_dim=rank,
                                          alpha=alpha, dropout=params.dropout, use_tucker=False, **extra)
    for mod in net.values():
        mod.apply_to()  # the layer's forward now adds the module's weight delta
    device = next(model.parameters()).device
    net.to(device=device, dtype=torch.float32)
    net.requires_grad_(True)
    model.add_module(ATTR, net)
    return net


def lycoris_net(model: Any) -> Any:
    return getattr(model, ATTR, None) if model is not None else None


def kohya_tensors(net: Any, dtype: Any) -> dict:
    """The LyCORIS modules' own file layout, cast for the file."""
    return {k: v.detach().to(dtype).cpu().contiguous() for k, v in net.state_dict().items()}


def train_state(net: Any) -> dict:
    return {k: p.detach() for k, p in net.named_parameters()}


def load_train_state(net: Any, sd: dict) -> list[str]:
    """Copy a `train_state` back; returns the names that did not match (empty = exact)."""
    import torch

    own = dict(net.named_parameters())
    bad = sorted(set(own) ^ set(sd)) + [k for k in own if k in sd and own[k].shape != sd[k].shape]
    if bad:
        return bad
    with torch.no_grad():
        for k, p in own.items():
            p.copy_(sd[k].to(p.device, p.dtype))
    return []


def network_args(params: Any) -> dict:
    """kohya `ss_network_args`: the options a LyCORIS/kohya loader or browser reads."""
    t = params.network_type
    if t == "lora":
        return {}
    if t == "dora":
        return {"dora_wd": "True"}
    args = {"algo": t, "conv_dim": str(params.conv_rank or params.rank),
            "conv_alpha": str(params.conv_alpha or params.alpha), "dropout": str(params.dropout),
            "preset": params.target}
    if t == "lokr":
        args["factor"] = str(params.lokr_factor)
    return args
