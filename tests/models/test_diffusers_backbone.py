"""The `diffusers` backbone: tiny random Sana and SD3 transformers of diffusers' own classes, saved with
`save_pretrained` and loaded back through `model.backbone: {kind: diffusers, ...}`.

The identity test compares the wrapped model with the bare transformer, loaded by diffusers itself and called as
its pipeline calls it (timestep = (1 - gamma) * 1000), with every reward missing; the tolerance is the float noise
of the bare model measured on the spot (the same rows computed in another batch arrangement).
"""

import json
import shutil

import pytest
import torch
from diffusers import SanaTransformer2DModel, SD3Transformer2DModel

from mirokit.cli.main import main
from mirokit.config import ConfigError, from_dict
from mirokit.models import GeneratorConfig, MiroGenerator
from mirokit.pipeline import MiroPipeline
from mirokit.sampling import SamplingSettings, generate

TEXT_DIM = 32
SANA = {"in_channels": 3, "out_channels": 3, "num_attention_heads": 2, "attention_head_dim": 8, "num_layers": 1,
        "num_cross_attention_heads": 2, "cross_attention_head_dim": 8, "cross_attention_dim": 16,
        "caption_channels": TEXT_DIM, "sample_size": 16, "patch_size": 2}
SD3 = {"sample_size": 16, "patch_size": 2, "in_channels": 3, "out_channels": 3, "num_layers": 2,
       "attention_head_dim": 8, "num_attention_heads": 2, "joint_attention_dim": TEXT_DIM, "caption_projection_dim": 16,
       "pooled_projection_dim": 16, "pos_embed_max_size": 16}
CLASSES = {"sana": (SanaTransformer2DModel, SANA), "sd3": (SD3Transformer2DModel, SD3)}
NAN = float("nan")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A folder with `sana/transformer` and `sd3/transformer`, each a tiny random transformer (seeded)."""
    folder = tmp_path_factory.mktemp("diffusers")
    for family, (cls, config) in CLASSES.items():
        torch.manual_seed(0)
        cls(**config).save_pretrained(folder / family / "transformer")
    return folder


def wrapped(path, keys=("a", "b"), **backbone) -> MiroGenerator:
    """A MiroGenerator on the diffusers backbone of `path` (pretrained weights unless said otherwise)."""
    section = {"kind": "diffusers", "name_or_path": str(path), "pretrained": True, **backbone}
    cfg = from_dict(GeneratorConfig, {"image_channels": 3, "image_size": 16, "reward_keys": list(keys),
                                      "text_dim": TEXT_DIM, "parametrisation": "rectified_flow", "backbone": section})
    return MiroGenerator(cfg).eval()


def inputs(batch: int = 3, seed: int = 0):
    """y (B, 3, 16, 16), gamma (B,), text (B, 6, 32) with a padded mask (B, 6)."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, 6, dtype=torch.bool)
    mask[:, -2:] = False
    return (torch.randn(batch, 3, 16, 16, generator=g), torch.rand(batch, generator=g).clamp(0.05, 0.95),
            torch.randn(batch, 6, TEXT_DIM, generator=g), mask)


def bare_call(family, bare, model, y, gamma, text, mask):
    """The bare transformer called as its diffusers pipeline calls it (SD3: the wrapper's pooled text vector)."""
    timestep = (1 - gamma) * 1000
    if family == "sana":
        return bare(y, encoder_hidden_states=text, timestep=timestep, encoder_attention_mask=mask, return_dict=False)[0]
    pooled = model.network.trunk.pooled(text, mask)
    return bare(y, encoder_hidden_states=text, pooled_projections=pooled, timestep=timestep, return_dict=False)[0]


def tolerance(family, bare, model, y, gamma, text, mask):
    """(the bare output, a tolerance from its own float noise: rows alone vs in a batch, floored at float32's
    resolution of its magnitude)."""
    together = bare_call(family, bare, model, y, gamma, text, mask)
    alone = torch.cat([bare_call(family, bare, model, y[i:i + 1], gamma[i:i + 1], text[i:i + 1], mask[i:i + 1])
                       for i in range(y.shape[0])])
    noise = (together - alone).abs().max().item()
    return together, 4 * noise + 16 * torch.finfo(torch.float32).eps * together.abs().max().item()


@pytest.mark.parametrize("family", ["sana", "sd3"])
def test_with_every_reward_missing_the_wrapped_transformer_is_the_bare_one(root, family):
    model = wrapped(root / family)
    bare = CLASSES[family][0].from_pretrained(root / family, subfolder="transformer").eval()
    y, gamma, text, mask = inputs()
    with torch.no_grad():
        ref, tol = tolerance(family, bare, model, y, gamma, text, mask)
        out = model(y, gamma, text=text, text_mask=mask, rewards=torch.full((3, 2), NAN))
        assert out.self_cond is None and torch.equal(out.logvar, torch.zeros(3))  # rectified_flow: plain MSE
        assert (out.velocity - ref).abs().max().item() <= tol
        # mixed batch: row 0 all missing, row 1 all present, row 2 one missing; row 0 is still the bare model's
        mixed = model(y, gamma, text=text, text_mask=mask, rewards=torch.tensor([[NAN, NAN], [0.9, 0.1], [0.5, NAN]]))
        assert (mixed.velocity[0] - ref[0]).abs().max().item() <= tol
        assert (mixed.velocity[1:] - ref[1:]).flatten(1).abs().amax(1).min().item() > 100 * tol  # rewards are read


@pytest.mark.parametrize("family", ["sana", "sd3"])
def test_rewards_steer_the_output_once_their_embedders_have_weights(root, family):
    torch.manual_seed(1)
    model = wrapped(root / family)
    for embedder in model.network.conditioner.reward_embedders.values():
        torch.nn.init.normal_(embedder.proj.weight, std=1.0)
    y, gamma, text, mask = inputs(2)

    def velocity(rewards):
        with torch.no_grad():
            return model(y, gamma, text=text, text_mask=mask, rewards=torch.tensor(rewards)).velocity

    base = velocity([[0.9, 0.2], [0.9, 0.2]])
    scale = base.abs().mean().item()
    for other in ([[0.1, 0.2], [0.1, 0.2]], [[0.9, 0.8], [0.9, 0.8]], [[NAN, 0.2], [NAN, 0.2]], [[0.0, 0.2]] * 2):
        assert (velocity(other) - base).abs().mean().item() > 1e-3 * scale, other
    # a row's output depends on that row alone: the same row beside different rows gives the same output
    pair = velocity([[0.9, 0.2], [NAN, NAN]])
    assert torch.allclose(pair[0], base[0], atol=1e-5 * scale)


@pytest.mark.parametrize("family", ["sana", "sd3"])
def test_mirokit_euler_sampling_is_diffusers_flow_match_euler_on_the_bare_transformer(root, family):
    """The rectified_flow parametrisation puts the model in mirokit's convention: mirokit's Euler solver on the
    wrapped model (rewards missing) walks the same path as diffusers' FlowMatchEulerDiscreteScheduler (shift 1) on
    the bare transformer."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from mirokit.sampling.solvers import gamma_grid, solve

    model = wrapped(root / family)
    bare = CLASSES[family][0].from_pretrained(root / family, subfolder="transformer").eval()
    noise, _, text, mask = inputs(2)
    grid = gamma_grid(4)
    rewards = torch.full((2, 2), NAN)
    with torch.no_grad():
        ours = solve(lambda y, g, state: (model(y, g, text=text, text_mask=mask, rewards=rewards).velocity, None),
                     noise, grid)
        scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0)
        scheduler.set_timesteps(sigmas=(1 - grid[:-1]).tolist())
        latents = noise.clone()
        for t in scheduler.timesteps:
            velocity = bare_call(family, bare, model, latents, 1 - t.expand(2) / 1000, text, mask)
            latents = scheduler.step(velocity, t, latents, return_dict=False)[0]
    assert (ours - latents).abs().max().item() < 1e-4 * latents.abs().max().item()
    assert (ours - noise).abs().max().item() > 0.1  # it moved


@pytest.mark.parametrize("family", ["sana", "sd3"])
def test_the_wrapped_forward_has_no_graph_break(root, family):
    model = wrapped(root / family)
    y, gamma, text, mask = inputs(2)
    rewards = torch.tensor([[0.3, NAN], [0.5, 0.5]])
    for autocast in (False, True):  # sampling in fp32; a bf16 training pass
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            explained = torch._dynamo.explain(model)(y, gamma, text=text, text_mask=mask, rewards=rewards)
        reasons = [r.reason for r in explained.break_reasons]
        assert explained.graph_break_count == 0 and explained.graph_count == 1, (autocast, reasons)
        assert explained.op_count > 50  # the whole network was captured


def test_a_saved_model_folder_holds_its_transformer_config_and_needs_no_source(root, tmp_path):
    source = tmp_path / "source"
    shutil.copytree(root / "sana", source)
    model = wrapped(source)
    y, gamma, text, mask = inputs(2)
    rewards = torch.tensor([[0.3, NAN], [0.7, 0.1]])
    with torch.no_grad():
        before = model(y, gamma, text=text, text_mask=mask, rewards=rewards).velocity
    model.save_pretrained(tmp_path / "saved")
    shutil.rmtree(source)
    section = json.loads((tmp_path / "saved" / "config.json").read_text())["backbone"]
    assert section["pretrained"] is False and section["family"] == "sana"
    assert section["transformer_config"]["_class_name"] == "SanaTransformer2DModel"
    again = MiroGenerator.from_pretrained(tmp_path / "saved")
    with torch.no_grad():
        assert torch.equal(again(y, gamma, text=text, text_mask=mask, rewards=rewards).velocity, before)


def one_line_error(build, kind=ValueError) -> str:
    with pytest.raises(kind) as info:
        build()
    text = str(info.value)
    assert "\n" not in text
    return text


def test_another_family_or_a_config_that_misses_the_weights_is_a_one_line_error(root, tmp_path):
    text = one_line_error(lambda: wrapped(root / "sana", family="sd3"))
    assert "family 'sd3' reads SD3Transformer2DModel" in text and "SanaTransformer2DModel" in text
    other = tmp_path / "flux" / "transformer"
    other.mkdir(parents=True)
    (other / "config.json").write_text(json.dumps({"_class_name": "FluxTransformer2DModel", "in_channels": 3}))
    assert "holds a FluxTransformer2DModel, which no family reads" in one_line_error(lambda: wrapped(other.parent))
    deeper = {"_class_name": "SanaTransformer2DModel", **SANA, "num_layers": 2}
    text = one_line_error(lambda: wrapped(root / "sana", transformer_config=deeper))
    assert "do not match the model: missing transformer_blocks.1." in text
    wider = {**SD3, "caption_projection_dim": 32, "num_attention_heads": 4}
    assert "names no _class_name; set model.backbone.family" in one_line_error(
        lambda: wrapped(root / "sd3", transformer_config=wider))
    assert "mis-shaped" in one_line_error(lambda: wrapped(root / "sd3", family="sd3", transformer_config=wider))
    typo = {**SANA, "num_layer": 2}
    assert "num_layer" in one_line_error(lambda: wrapped(root / "sana", family="sana", pretrained=False,
                                                         transformer_config=typo))
    assert "not found" in one_line_error(lambda: wrapped(tmp_path / "nowhere"), FileNotFoundError)
    bare = tmp_path / "no_weights" / "transformer"
    bare.mkdir(parents=True)
    shutil.copy(root / "sana" / "transformer" / "config.json", bare / "config.json")
    assert "holds no diffusion_pytorch_model.safetensors" in one_line_error(lambda: wrapped(bare.parent),
                                                                             FileNotFoundError)


def test_settings_that_do_not_fit_the_transformer_are_one_line_errors(root):
    base = {"image_channels": 3, "image_size": 16, "reward_keys": ["a"], "text_dim": TEXT_DIM,
            "parametrisation": "rectified_flow",
            "backbone": {"kind": "diffusers", "name_or_path": str(root / "sana"), "pretrained": True}}

    def build(**changes):
        return lambda: MiroGenerator(from_dict(GeneratorConfig, {**base, **changes}))

    assert "reads 32-wide text tokens (caption_channels), but the text encoder gives 64" in one_line_error(
        build(text_dim=64))
    assert "in_channels=3, but model.image_channels=4" in one_line_error(build(image_channels=4))
    assert "set model.parametrisation=rectified_flow" in one_line_error(build(parametrisation="edm_precond"))
    assert "unknown parametrisation 'ddpm'" in one_line_error(build(parametrisation="ddpm"), ConfigError)
    wrong = {**base["backbone"], "family": "flux"}
    assert "family must be auto or one of sana, sd3" in one_line_error(build(backbone=wrong), ConfigError)


@pytest.mark.parametrize("family", ["sana", "sd3"])
def test_mirokit_train_checkpoints_resumes_and_the_model_samples(root, family, tmp_path, capsys):
    run = tmp_path / "run"
    options = [f"model.backbone={{kind: diffusers, name_or_path: {root / family}, pretrained: true, reward_dim: 16}}",
               "model.image_size=16", f"text_encoder={{kind: tokens, dim: {TEXT_DIM}, max_length: 8, num_layers: 1, "
               "num_heads: 4}", "train.precision=fp32", "train.progress=false", "data={kind: toy, num_samples: 64}",
               "train.threads=1", "train.batch_size=4", "train.log_every=1", "train.checkpoint_every=1",
               "optim.warmup_steps=1", f"out_dir={run}"]
    assert main(["train", "--config", f"cpu_tiny_{family}", *options, "train.steps=1", "optim.total_steps=2"]) == 0
    assert main(["train", "--config", f"cpu_tiny_{family}", *options, "train.steps=2", "optim.total_steps=2"]) == 0
    assert "resuming from" in capsys.readouterr().out
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["logvar"] == 0.0 for r in rows)
    pipe = MiroPipeline.from_pretrained(run / "model")
    assert type(pipe.generator.network.trunk).__name__ == {"sana": "SanaTrunk", "sd3": "SD3Trunk"}[family]
    images = generate(pipe, ["a red circle", "a blue square"], SamplingSettings(steps=2, guidance=1.0))
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()
    assert main(["export", str(run), "--out", str(tmp_path / "exported")]) == 0  # the step-1 checkpoint
    assert MiroPipeline.from_pretrained(tmp_path / "exported").generator.config.parametrisation == "rectified_flow"
    out = tmp_path / "samples"
    assert main(["sample", "--model", str(run / "model"), "--prompt", "a red circle", "--steps", "2",
                 "--out", str(out)]) == 0
    assert (out / "000_000.png").is_file()
