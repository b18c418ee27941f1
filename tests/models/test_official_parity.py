"""Numerical parity with the official MIRO network (miro-t2i, installed with --no-deps for tests)."""

import pytest
import torch
from conftest import MIRO_T2I_MISSING

from mirokit.models import MiroGenerator
from mirokit.models.official import convert_official_config, convert_official_state_dict

miro_rin = pytest.importorskip("miro.models.networks.rin", reason=MIRO_T2I_MISSING)
# miro-t2i is optional: its modules are imported only once the importorskip above has found it
from miro.models.preconditioning import FlowPrecond  # noqa: E402

KEYS = ["clip_score", "aesthetic_score", "vqa_score"]
NETWORK = dict(data_size=8, data_dim=32, num_input_channels=4, num_latents=12, latents_dim=64, label_dim=48,
               num_processing_layers=2, num_blocks=2, patch_size=2, num_cond_tokens=8, read_write_heads=4,
               compute_heads=4, num_text_registers=4, coherence_keys=KEYS, use_cond_rin_block=True,
               concat_cond_token_to_latents=False, use_self_conditioning=True)
PRECOND = dict(num_latents=12, latents_dim=64, sigma_data=0.5, do_gradnorm_reweighting=True, logvar_channels=16)


def _official():
    torch.manual_seed(0)
    net = miro_rin.CADRINTextCond(**NETWORK).eval()
    pre = FlowPrecond(**PRECOND).eval()
    with torch.no_grad():  # non-trivial values everywhere, including the zero-initialised self-cond norm
        for p in list(net.parameters()) + list(pre.parameters()):
            if p.dtype.is_floating_point:
                p.add_(torch.randn_like(p) * 0.05)
    return net, pre


def test_official_weights_load_and_match_numerically():
    net, pre = _official()
    state = {f"network.{k}": v for k, v in net.state_dict().items()}
    state.update({f"preconditioning.{k}": v for k, v in pre.state_dict().items()})
    ours = MiroGenerator(convert_official_config({"network": NETWORK, "preconditioning": PRECOND})).eval()
    missing, unexpected = ours.load_state_dict(convert_official_state_dict(state), strict=True)
    assert not missing and not unexpected

    g = torch.Generator().manual_seed(1)
    b = 3
    y = torch.randn(b, 4, 8, 8, generator=g)
    gamma = torch.rand(b, generator=g)
    text = torch.randn(b, 6, 48, generator=g)
    mask = torch.ones(b, 6, dtype=torch.bool)
    mask[0, 3:] = False
    rewards = torch.rand(b, 3, generator=g)
    rewards[1, 2] = float("nan")  # missing reward: position embedding alone in both
    prev = torch.randn(b, 12, 64, generator=g)

    batch = {"y": y.clone(), "gamma": gamma, "text_tokens_embeddings": text, "text_tokens_mask": mask,
             "previous_latents": prev}
    for i, key in enumerate(KEYS):
        batch[f"{key}_coherence"] = rewards[:, i]
    with torch.no_grad():
        ref_v, ref_z, ref_logvar = pre(net, batch, return_logvar=True)
        out = ours(y, gamma, text=text, text_mask=mask, rewards=rewards, self_cond=prev)
    torch.testing.assert_close(out.velocity, ref_v, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.self_cond, ref_z, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.logvar, ref_logvar.reshape(-1), atol=1e-6, rtol=1e-6)


def test_unsupported_official_layout_is_a_clear_error():
    with pytest.raises(ValueError, match="use_cond_rin_block"):
        convert_official_config({"network": dict(NETWORK, concat_cond_token_to_latents=True)})
