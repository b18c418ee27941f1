"""UNet trunk: shapes, masking, conditioning, self-conditioning init, gradient flow."""

from __future__ import annotations

import pytest
import torch

from mirokit.models.conditioning import Conditioning, ConditioningConfig, RewardTextConditioner
from mirokit.models.layers import xavier_init_
from mirokit.models.unet import UNetConfig, UNetTrunk

TINY = dict(channels=[8, 16], attention_levels=[1], cond_dim=16, heads=2)


def _cond(b: int, w: int, t: int = 6, seed: int = 0) -> Conditioning:
    """Random conditioning: time (B, W), tokens (B, T, W), mask (B, T) with the last 2 tokens padded."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[:, -2:] = False
    return Conditioning(time=torch.randn(b, w, generator=g), tokens=torch.randn(b, t, w, generator=g), mask=mask)


def _generator_init(trunk: UNetTrunk) -> UNetTrunk:
    """What the generator does: xavier on every Linear/Conv2d, then reset the self-conditioning path."""
    xavier_init_(trunk)
    trunk.reset_self_conditioning()
    return trunk


def test_default_parameter_count_and_contract():
    trunk = UNetTrunk(UNetConfig(), channels=3, image_size=32)
    n = sum(p.numel() for p in trunk.parameters())
    print(f"\nUNetTrunk default config (channels [32, 64, 128], cond_dim 128): {n:,} parameters")
    assert 1.0e6 < n < 2.0e6
    assert trunk.cond_width == 128
    assert [type(b).__name__ for b in trunk.blocks()] == ["Level"] * 6  # 3 levels down, 3 up


@pytest.mark.parametrize("size", [16, 32, 64])
def test_output_shapes(size):
    torch.manual_seed(0)
    trunk = _generator_init(UNetTrunk(UNetConfig(), channels=3, image_size=size))
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        out, state = trunk(x, _cond(2, 128))
        out2, _ = trunk(x, _cond(2, 128), self_cond=state)
    assert out.shape == out2.shape == (2, 3, size, size)
    assert state.shape == (2, 3, size, size)  # the state is the previous output
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("cfg", [
    UNetConfig(**TINY, blocks_per_level=2, self_attention=True),
    UNetConfig(**{**TINY, "attention_levels": [0, 1]}, self_conditioning=False, dropout=0.1),
    UNetConfig(channels=[8], attention_levels=[0], cond_dim=16, heads=2),
])
def test_config_variants(cfg):
    trunk = UNetTrunk(cfg, channels=4, image_size=8)
    out, state = trunk(torch.randn(2, 4, 8, 8), _cond(2, 16))
    assert out.shape == state.shape == (2, 4, 8, 8)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="divisible"):
        UNetTrunk(UNetConfig(), channels=3, image_size=30)
    with pytest.raises(ValueError, match="attention_levels"):
        UNetTrunk(UNetConfig(attention_levels=[3]), channels=3, image_size=32)
    with pytest.raises(ValueError, match="cond_dim"):
        UNetTrunk(UNetConfig(cond_dim=18, heads=2), channels=3, image_size=32)


def test_masked_tokens_have_no_effect_and_valid_tokens_do():
    torch.manual_seed(0)
    trunk = _generator_init(UNetTrunk(UNetConfig(**TINY), channels=3, image_size=8)).eval()
    x = torch.randn(2, 3, 8, 8)
    cond = _cond(2, 16)
    with torch.no_grad():
        ref, _ = trunk(x, cond)
        padded = cond.tokens.clone()
        padded[:, -1] = 100.0 * torch.randn_like(padded[:, -1])  # mask False there
        out_padded, _ = trunk(x, Conditioning(time=cond.time, tokens=padded, mask=cond.mask))
        valid = cond.tokens.clone()
        valid[:, 1] = torch.randn_like(valid[:, 1])  # mask True there
        out_valid, _ = trunk(x, Conditioning(time=cond.time, tokens=valid, mask=cond.mask))
    torch.testing.assert_close(out_padded, ref)
    assert (out_valid - ref).abs().max() > 1e-3


def test_conditioner_text_and_rewards_reach_the_output():
    torch.manual_seed(0)
    cfg = UNetConfig(**TINY)
    conditioner = RewardTextConditioner(width=cfg.cond_dim, reward_keys=["a", "b"], text_dim=16,
                                        cfg=ConditioningConfig(num_registers=4, mixer_layers=1, mixer_heads=4))
    trunk = _generator_init(UNetTrunk(cfg, channels=3, image_size=8)).eval()
    x, gamma = torch.randn(2, 3, 8, 8), torch.rand(2)
    text = torch.randn(2, 5, 16)
    text_mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    rewards = torch.tensor([[0.2, 0.9], [0.7, float("nan")]])
    with torch.no_grad():
        ref, _ = trunk(x, conditioner(gamma, text, text_mask, rewards))
        other_text = text.clone()
        other_text[1, 3:] = torch.randn(2, 16)  # padding of sample 1 only
        pad, _ = trunk(x, conditioner(gamma, other_text, text_mask, rewards))
        txt, _ = trunk(x, conditioner(gamma, torch.randn(2, 5, 16), text_mask, rewards))
        rew, _ = trunk(x, conditioner(gamma, text, text_mask, torch.tensor([[0.9, 0.1], [0.0, 0.5]])))
    torch.testing.assert_close(pad, ref)
    assert (txt - ref).abs().amax(dim=(1, 2, 3)).min() > 1e-4
    assert (rew - ref).abs().amax(dim=(1, 2, 3)).min() > 1e-4


def test_self_conditioning_noop_after_reset_then_learned():
    torch.manual_seed(0)
    trunk = _generator_init(UNetTrunk(UNetConfig(**TINY), channels=3, image_size=8))
    x, cond, prev = torch.randn(4, 3, 8, 8), _cond(4, 16), torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        out_none, _ = trunk(x, cond)
        out_prev, _ = trunk(x, cond, self_cond=prev)
    torch.testing.assert_close(out_prev, out_none, rtol=0, atol=0)

    opt = torch.optim.SGD(trunk.parameters(), lr=0.1)
    out, _ = trunk(x, cond, self_cond=prev)
    out.square().mean().backward()
    opt.step()
    with torch.no_grad():
        out_none, _ = trunk(x, cond)
        out_prev, _ = trunk(x, cond, self_cond=prev)
    assert (out_prev - out_none).abs().max() > 1e-6


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    trunk = _generator_init(UNetTrunk(UNetConfig(**TINY, blocks_per_level=2, self_attention=True),
                                      channels=3, image_size=8))
    cond = _cond(2, 16)
    cond.time.requires_grad_(True)
    cond.tokens.requires_grad_(True)
    out, _ = trunk(torch.randn(2, 3, 8, 8), cond, self_cond=torch.randn(2, 3, 8, 8))
    out.square().mean().backward()
    dead = [n for n, p in trunk.named_parameters() if p.grad is None or p.grad.abs().max() == 0]
    assert not dead, dead
    assert cond.time.grad.abs().max() > 0 and cond.tokens.grad[:, :-2].abs().max() > 0
    assert cond.tokens.grad[:, -2:].abs().max() == 0  # padded tokens get no gradient


def test_pooled_conditioning_reaches_blocks_without_attention():
    """With no attention level, the prompt tokens reach the output only through the pooled path."""
    torch.manual_seed(0)
    x, cond = torch.randn(2, 3, 8, 8), _cond(2, 16)
    other = Conditioning(time=cond.time, tokens=torch.randn_like(cond.tokens), mask=cond.mask)
    padded = cond.tokens.clone()
    padded[:, -1] = 100.0  # masked: must not enter the mean
    padded_cond = Conditioning(time=cond.time, tokens=padded, mask=cond.mask)
    outs = {}
    for pooled in (False, True):
        trunk = _generator_init(UNetTrunk(UNetConfig(**{**TINY, "attention_levels": []}, pooled_conditioning=pooled),
                                          channels=3, image_size=8)).eval()
        with torch.no_grad():
            outs[pooled] = [trunk(x, c)[0] for c in (cond, other, padded_cond)]
        assert (trunk.pool_proj is not None) == pooled
    torch.testing.assert_close(outs[False][1], outs[False][0], rtol=0, atol=0)
    assert (outs[True][1] - outs[True][0]).abs().amax(dim=(1, 2, 3)).min() > 1e-4
    torch.testing.assert_close(outs[True][2], outs[True][0])
