"""Map the official MIRO network (miro-t2i `CADRINTextCond` + `FlowPrecond`) onto mirokit's generator.

The decomposition is the same, so the mapping is a key-renaming table plus a config translation.
Constant boolean mask parameters of the official code (`cond_mask`, `attention_mask_dummy`, ...)
carry no information and are dropped.
"""

from __future__ import annotations

import re

from torch import Tensor

from mirokit.models.conditioning import ConditioningConfig
from mirokit.models.generator import GeneratorConfig
from mirokit.models.rin import RINConfig

_DROPPED = re.compile(r"(^|\.)(attention_mask_dummy|registers_coherence_mask|cond_mask)$")

# (official prefix, mirokit prefix), first match wins; applied after the leading "network."
_RENAMES = [
    (r"time_embedder\.encode_time\.", "conditioner.time_embedder.encode."),
    (r"time_embedder\.map_time_input\.", "conditioner.time_embedder.map_input."),
    (r"time_embedder\.map_time_output\.", "conditioner.time_embedder.map_output."),
    (r"coherence_embedder\.(\w+?)_coherence\.encode_time\.", r"conditioner.reward_embedders.\1.encode."),
    (r"coherence_embedder\.(\w+?)_coherence\.map_time_input\.", r"conditioner.reward_embedders.\1.map_input."),
    (r"coherence_embedder\.(\w+?)_coherence\.map_time_output\.", r"conditioner.reward_embedders.\1.map_output."),
    (r"coherence_positional_embedding$", "conditioner.reward_position"),
    (r"text_registers$", "conditioner.registers"),
    (r"map_text_tokens\.", "conditioner.text_proj."),
    (r"transformers_blocks\.", "conditioner.mixer."),
    (r"(patch_extractor|data_pos_embedding|data_ln|latents|ln_previous_1|linear_previous|ln_previous_2|"
     r"rin_blocks|map_tokens_to_patches)\b", r"trunk.\1"),
]


AUXILIARY_PREFIXES = ("data_preprocessing.", "postprocessing.")
"""Official tensors that are not the generator's (the latent normalisation buffers `scale` / `bias`)."""


def official_key_to_mirokit(key: str) -> str | None:
    """Rename one official state-dict key (with its `network.`/`preconditioning.` prefix); None = dropped
    (constant masks, and the auxiliary normalisation buffers, which the image space holds)."""
    if _DROPPED.search(key) or key.startswith(AUXILIARY_PREFIXES):
        return None
    if key.startswith("preconditioning."):
        return key
    if not key.startswith("network."):
        raise KeyError(f"unexpected key in an official MIRO checkpoint: {key}")
    rest = key[len("network."):]
    for pattern, repl in _RENAMES:
        new, n = re.subn("^" + pattern, repl, rest, count=1)
        if n:
            return "network." + new
    raise KeyError(f"no mirokit name for official key {key}")


def convert_official_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Official `network.*` / `preconditioning.*` tensors -> a MiroGenerator state dict."""
    out = {}
    for key, value in state.items():
        new = official_key_to_mirokit(key)
        if new is not None:
            out[new] = value
    return out


def convert_official_config(config: dict) -> GeneratorConfig:
    """The official config.json (`network` and `preconditioning` sections) -> GeneratorConfig.

    Options our RIN does not implement (latents concatenated with conditioning tokens, no
    conditioning cross-attention, different data/latent MLP widths) raise a one-line ValueError.
    """
    if not isinstance(config.get("network"), dict):
        raise ValueError("not an official MIRO config (no `network` section)")
    net = dict(config["network"])
    pre = dict(config.get("preconditioning", {}))
    missing = [k for k in ("data_size", "data_dim", "num_input_channels", "num_latents", "latents_dim", "label_dim",
                           "num_processing_layers", "num_blocks", "patch_size", "coherence_keys") if k not in net]
    if missing:
        raise ValueError(f"official config: network section lacks {', '.join(missing)}")
    if pre.get("do_normalization", True) not in (True, "noise_driven") or pre.get("logvar_mlp_layers", 0) != 0:
        raise ValueError("only official preconditioning with do_normalization=noise_driven and logvar_mlp_layers=0 "
                         "is supported")
    if net.get("concat_cond_token_to_latents", True) or not net.get("use_cond_rin_block", False):
        raise ValueError("only official RINs with use_cond_rin_block=true and concat_cond_token_to_latents=false "
                         "are supported")
    if net.get("data_mlp_multiplier", 4) != net.get("latent_mlp_multiplier", 4):
        raise ValueError("official RINs with data_mlp_multiplier != latent_mlp_multiplier are not supported")
    rin = RINConfig(
        patch_size=net["patch_size"], data_dim=net["data_dim"], latents_dim=net["latents_dim"],
        num_latents=net["num_latents"], num_blocks=net["num_blocks"],
        num_processing_layers=net["num_processing_layers"], read_write_heads=net.get("read_write_heads", 16),
        compute_heads=net.get("compute_heads", 16), mlp_multiplier=net.get("latent_mlp_multiplier", 4),
        hidden_multiple=256, self_conditioning=net.get("use_self_conditioning", False),
    )
    return GeneratorConfig(
        image_channels=net["num_input_channels"], image_size=net["data_size"],
        reward_keys=list(net["coherence_keys"]), text_dim=net["label_dim"], backbone=rin,
        conditioning=ConditioningConfig(num_registers=net.get("num_text_registers", 16), mixer_layers=2,
                                        mixer_heads=16, mlp_multiplier=4),
        sigma_data=pre.get("sigma_data", 0.5), learned_uncertainty=pre.get("do_gradnorm_reweighting", True),
        logvar_channels=pre.get("logvar_channels", 128),
    )
