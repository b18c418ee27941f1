import math

import pytest
import torch
from conftest import make_conditions

from mirokit.models import MiroGenerator, cpu_tiny_rin_config, official_rin_config
from mirokit.models.conditioning import ConditioningConfig, RewardTextConditioner

OFFICIAL_KEYS = ["clip_score", "aesthetic_score", "image_reward_score", "pick_a_score_score", "hpsv2_score",
                 "vqa_score", "sciscore_score"]


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_official_configuration_is_about_360m_parameters():
    with torch.device("meta"):
        model = MiroGenerator(official_rin_config(OFFICIAL_KEYS))
    n = count(model)
    print(f"official RIN: {n / 1e6:.1f}M parameters")
    assert 300e6 < n < 420e6


def test_cpu_configuration_is_about_3m_parameters():
    n = count(MiroGenerator(cpu_tiny_rin_config(["brightness", "size"])))
    print(f"cpu RIN: {n / 1e6:.2f}M parameters")
    assert 2e6 < n < 4.5e6


def test_forward_shapes_and_any_number_of_rewards(tiny_generator_config):
    for keys in ([], ["a"], ["a", "b", "c", "d", "e"]):
        tiny_generator_config.reward_keys = keys
        model = MiroGenerator(tiny_generator_config)
        cond = make_conditions(3, keys=len(keys))
        if not keys:
            cond["rewards"] = None
        out = model(torch.randn(3, 3, 16, 16), torch.rand(3), **cond)
        assert out.velocity.shape == (3, 3, 16, 16)
        assert out.self_cond.shape == (3, 8, 32)
        assert out.logvar.shape == (3,)


def test_missing_reward_token_is_the_position_embedding_alone():
    torch.manual_seed(0)
    cond = RewardTextConditioner(32, ["a", "b"], 12, ConditioningConfig(num_registers=2, mixer_layers=1, mixer_heads=4))
    tokens = cond.reward_tokens(torch.tensor([[0.3, float("nan")]]))
    assert torch.equal(tokens[0, 1], cond.reward_position[1])
    assert not torch.allclose(tokens[0, 0], cond.reward_position[0])


def test_rewards_change_the_output_and_nan_differs_from_zero(tiny_generator_config):
    torch.manual_seed(0)
    model = MiroGenerator(tiny_generator_config)
    torch.nn.init.normal_(model.network.trunk.map_tokens_to_patches[1].weight)
    y, g = torch.randn(2, 3, 16, 16), torch.rand(2)
    cond = make_conditions(2)
    base = model(y, g, **cond).velocity
    for value in (0.0, float("nan")):
        other = dict(cond, rewards=cond["rewards"].clone())
        other["rewards"][:, 0] = value
        assert not torch.allclose(base, model(y, g, **other).velocity)
    zero = dict(cond, rewards=torch.zeros_like(cond["rewards"]))
    nan = dict(cond, rewards=torch.full_like(cond["rewards"], float("nan")))
    assert not torch.allclose(model(y, g, **zero).velocity, model(y, g, **nan).velocity)


def test_padded_text_tokens_are_ignored(tiny_generator_config):
    model = MiroGenerator(tiny_generator_config)
    y, g = torch.randn(2, 3, 16, 16), torch.rand(2)
    cond = make_conditions(2)
    changed = dict(cond, text=cond["text"].clone())
    changed["text"][:, -2:] += 5.0  # the last two tokens are masked out
    torch.testing.assert_close(model(y, g, **cond).velocity, model(y, g, **changed).velocity)
    changed["text"][:, 0] += 5.0
    assert not torch.allclose(model(y, g, **cond).velocity, model(y, g, **changed).velocity)


def test_self_conditioning_starts_as_a_no_op(tiny_generator_config):
    model = MiroGenerator(tiny_generator_config)
    y, g, cond = torch.randn(2, 3, 16, 16), torch.rand(2), make_conditions(2)
    a = model(y, g, **cond).velocity
    b = model(y, g, self_cond=torch.randn(2, 8, 32), **cond).velocity
    torch.testing.assert_close(a, b)


def test_preconditioning_scales(tiny_generator_config):
    from mirokit.flow.precond import input_scale, output_scale

    g = torch.tensor([0.0, 0.5, 1.0])
    c_in = input_scale(g, 0.5)
    # pure noise: unit input; clean data with std 0.5: scale 2
    torch.testing.assert_close(c_in, torch.tensor([1.0, 1 / math.sqrt(0.0625 + 0.25), 2.0]))
    assert output_scale(0.5) == pytest.approx(math.sqrt(1.25))


def test_save_load_round_trip_gives_identical_outputs(tiny_generator_config, tmp_path):
    model = MiroGenerator(tiny_generator_config).eval()
    model.save_pretrained(tmp_path)
    loaded = MiroGenerator.from_pretrained(tmp_path)
    y, g, cond = torch.randn(2, 3, 16, 16), torch.rand(2), make_conditions(2)
    assert torch.equal(model(y, g, **cond).velocity, loaded(y, g, **cond).velocity)
    # the random Fourier frequencies are part of the weights
    assert torch.equal(model.network.conditioner.time_embedder.encode.freqs,
                       loaded.network.conditioner.time_embedder.encode.freqs)


def test_from_pretrained_missing_files_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing config.json"):
        MiroGenerator.from_pretrained(tmp_path)


def test_unknown_reward_key_lists_known_keys(tiny_generator_config):
    model = MiroGenerator(tiny_generator_config)
    with pytest.raises(ValueError, match="unknown reward key 'zzz'; this model knows: a, b"):
        model.rewards_tensor({"zzz": 1.0}, 2, default=1.0)
    r = model.rewards_tensor({"b": 0.25, "a": None}, 2, default=1.0)
    assert torch.isnan(r[:, 0]).all() and (r[:, 1] == 0.25).all()
