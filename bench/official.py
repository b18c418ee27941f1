"""mirokit's RIN side by side with the official MIRO network (miro-t2i 0.1.4, installed with --no-deps).

Both networks get the same configuration and the same weights (the official state dict mapped onto
mirokit's through `mirokit.models.official`), the same batch, and are timed alternately in one run.
Two measurements, each forward + backward, no optimizer:

- network: one call with a self-conditioning state, then backward (the bare network);
- training step: each codebase's own flow-matching loss with self-conditioning 0.9 and learned
  uncertainty weighting (official `FlowMatchingLoss`, mirokit `flow_matching_loss`), then backward.

Used by bench/train_step.py (`--vs-official`); importable on its own for experiments.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

OFFICIAL_KEYS = ["clip_score", "aesthetic_score", "image_reward_score", "pick_a_score_score", "hpsv2_score",
                 "vqa_score", "sciscore_score"]

CONFIGS = {
    # a ~39M-parameter RIN with the official structure, sized for a CPU run of minutes
    "cpu": dict(data_size=32, data_dim=256, num_input_channels=4, num_latents=128, latents_dim=512, label_dim=512,
                num_processing_layers=2, num_blocks=2, patch_size=2, num_cond_tokens=8, read_write_heads=8,
                compute_heads=8, num_text_registers=16),
    # the official ~360M configuration (4x32x32 SDXL latents, FLAN-T5-XL text)
    "official": dict(data_size=32, data_dim=512, num_input_channels=4, num_latents=256, latents_dim=1024,
                     label_dim=2048, num_processing_layers=4, num_blocks=4, patch_size=2, num_cond_tokens=8,
                     read_write_heads=16, compute_heads=16, num_text_registers=16),
}


@dataclass
class Pair:
    """Both models and one batch, ready to time."""

    official: Callable[[], None]
    ours: Callable[[], None]
    official_step: Callable[[], None]
    ours_step: Callable[[], None]
    generator: torch.nn.Module
    blocks: list
    """the RIN blocks of both networks (the units `compile_blocks` compiles)"""


def build_pair(name: str, batch: int, text_len: int, device: torch.device, bf16: bool) -> Pair:
    """Official network + preconditioning and mirokit's generator with the same weights, and closures
    running one forward+backward each (`official`/`ours`: bare network; `*_step`: each one's loss)."""
    from miro.models.loss import FlowMatchingLoss
    from miro.models.networks.rin import CADRINTextCond
    from miro.models.preconditioning import FlowPrecond
    from miro.models.scheduler import LinearScheduler

    from mirokit.flow.loss import FlowLossConfig, draw_flow_noise, flow_matching_loss
    from mirokit.models import MiroGenerator
    from mirokit.models.official import convert_official_config, convert_official_state_dict

    net_cfg = dict(CONFIGS[name], coherence_keys=OFFICIAL_KEYS, use_cond_rin_block=True,
                   concat_cond_token_to_latents=False, use_self_conditioning=True)
    pre_cfg = dict(num_latents=net_cfg["num_latents"], latents_dim=net_cfg["latents_dim"], sigma_data=0.5,
                   do_gradnorm_reweighting=True, logvar_channels=128)
    torch.manual_seed(0)
    net, pre = CADRINTextCond(**net_cfg), FlowPrecond(**pre_cfg)
    state = {f"network.{k}": v for k, v in net.state_dict().items()}
    state.update({f"preconditioning.{k}": v for k, v in pre.state_dict().items()})
    ours = MiroGenerator(convert_official_config({"network": net_cfg, "preconditioning": pre_cfg}))
    ours.load_state_dict(convert_official_state_dict(state), strict=True)
    for module in (net, pre, ours):
        module.to(device).train()

    g = torch.Generator().manual_seed(0)
    size, k = net_cfg["data_size"], len(OFFICIAL_KEYS)
    x0 = (0.5 * torch.randn(batch, 4, size, size, generator=g)).to(device)
    y = torch.randn(batch, 4, size, size, generator=g).to(device)
    gamma = torch.rand(batch, generator=g).to(device)
    text = torch.randn(batch, text_len, net_cfg["label_dim"], generator=g).to(device)
    mask = torch.ones(batch, text_len, dtype=torch.bool)
    mask[:, text_len // 2:] = torch.rand(batch, text_len - text_len // 2, generator=g) < 0.5
    mask = mask.to(device)
    rewards = torch.rand(batch, k, generator=g).to(device)
    prev = torch.randn(batch, net_cfg["num_latents"], net_cfg["latents_dim"], generator=g).to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def official_batch(**extra):
        out = {"text_tokens_embeddings": text, "text_tokens_mask": mask, **extra}
        out.update({f"{key}_coherence": rewards[:, i].clone() for i, key in enumerate(OFFICIAL_KEYS)})
        return out

    def official() -> None:
        with autocast:
            v, _, logvar = pre(net, official_batch(y=y, gamma=gamma, previous_latents=prev), return_logvar=True)
        (v.float().pow(2).mean() + logvar.float().mean()).backward()

    def mine() -> None:
        with autocast:
            out = ours(y, gamma, text=text, text_mask=mask, rewards=rewards, self_cond=prev)
        (out.velocity.float().pow(2).mean() + out.logvar.float().mean()).backward()

    loss_fn = FlowMatchingLoss(LinearScheduler(), uncond_conditioning=torch.zeros(1), self_cond_rate=0.9,
                               do_gradnorm_reweighting=True)
    flow_cfg = FlowLossConfig(self_cond_prob=0.9)

    def official_step() -> None:
        with autocast:
            loss, _ = loss_fn(pre, net, None, official_batch(x_0=x0), 0,
                              generator=torch.Generator(device=device).manual_seed(0))
        loss.float().mean().backward()

    def mine_step() -> None:
        draw = draw_flow_noise(tuple(x0.shape), flow_cfg, torch.Generator(device=device).manual_seed(0))
        with autocast:
            loss, _ = flow_matching_loss(ours, x0, {"text": text, "text_mask": mask, "rewards": rewards}, draw,
                                         flow_cfg)
        loss.backward()

    return Pair(official, mine, official_step, mine_step, ours, [*net.rin_blocks, *ours.network.trunk.rin_blocks])


def compile_blocks(pair: Pair) -> None:
    """torch.compile every RIN block of both networks, in place (what `train.compile` does in mirokit)."""
    for block in pair.blocks:
        block.compile()


def interleaved(a: Callable[[], None], b: Callable[[], None], rounds: int, repeats: int,
                sync: Callable[[], None]) -> tuple[float, float, float]:
    """Median seconds per call of a and b, and the median of per-round ratios time(a)/time(b).

    Each round times `repeats` calls of a then of b (order swapped every other round), so both see
    the same machine load; one warm-up call of each comes first.
    """
    def timed(fn) -> float:
        sync()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        sync()
        return (time.perf_counter() - start) / repeats

    a(), b()
    ta, tb, ratios = [], [], []
    for r in range(rounds):
        if r % 2:
            sb, sa = timed(b), timed(a)
        else:
            sa, sb = timed(a), timed(b)
        ta.append(sa)
        tb.append(sb)
        ratios.append(sa / sb)
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)
