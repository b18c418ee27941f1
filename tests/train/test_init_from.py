"""`train.init_from`: a run that starts from a trained model (mirokit folder, run checkpoint, released MIRO folder or
hub id), with reward keys added or dropped; the added key, missing, leaves the parent's outputs unchanged at step 0."""

import importlib.util
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from conftest import MIRO_T2I_MISSING, build_tiny_t5, build_tiny_vae
from runs import tiny_run

from mirokit.cli.main import main
from mirokit.config import to_dict
from mirokit.data.calibration import Calibration
from mirokit.data.source import DatasetInfo
from mirokit.encoders.text import build_text_encoder
from mirokit.models import ConditioningConfig, GeneratorConfig, MiroGenerator, RINConfig
from mirokit.models.unet import UNetConfig
from mirokit.pipeline import MiroPipeline
from mirokit.train.init_from import InitFrom, calibration_note, child_model_config, load_parent, load_parent_weights
from mirokit.train.metrics import read_metrics

TEXT = dict(kind="tokens", dim=12, max_length=8, num_layers=1, num_heads=4)


def _config(backbone: str, keys) -> GeneratorConfig:
    trunk = (RINConfig(patch_size=2, data_dim=32, latents_dim=32, num_latents=8, num_blocks=2, num_processing_layers=1,
                       read_write_heads=4, compute_heads=4, hidden_multiple=8) if backbone == "rin" else
             UNetConfig(channels=[16, 32], attention_levels=[1], cond_dim=32, heads=4, pooled_conditioning=True))
    return GeneratorConfig(image_channels=3, image_size=16, reward_keys=list(keys), text_dim=12, backbone=trunk,
                           conditioning=ConditioningConfig(num_registers=2, mixer_layers=1, mixer_heads=4),
                           logvar_channels=16)


def _save_parent(folder: Path, cfg: GeneratorConfig, calibration: Calibration | None = None) -> MiroGenerator:
    """A mirokit model folder holding a random generator, every weight perturbed (no zero-initialised part left)."""
    torch.manual_seed(0)
    generator = MiroGenerator(cfg).eval()
    with torch.no_grad():
        for p in generator.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    MiroPipeline(generator, build_text_encoder(TEXT), calibration=calibration).save_pretrained(folder)
    return generator


def _inputs(batch: int, keys: int):
    g = torch.Generator().manual_seed(3)
    mask = torch.ones(batch, 8, dtype=torch.bool)
    mask[:, 5:] = False
    rewards = torch.rand(batch, keys, generator=g)
    rewards[1, 0] = float("nan")  # one reward of the parent missing, and all of them in row 2
    rewards[2] = float("nan")
    return (torch.randn(batch, 3, 16, 16, generator=g), torch.rand(batch, generator=g),
            dict(text=torch.randn(batch, 8, 12, generator=g), text_mask=mask, rewards=rewards))


def _child(parent_dir: Path, cfg: GeneratorConfig, *, masked: bool = True) -> MiroGenerator:
    parent = load_parent(str(parent_dir))
    config = child_model_config(cfg, parent.config) if masked else cfg
    torch.manual_seed(1)  # the new key's embedder: another draw than the parent's
    child = MiroGenerator(config).eval()
    load_parent_weights(parent, child, None)
    return child


@pytest.mark.parametrize("backbone", ["rin", "unet"])
def test_an_added_reward_missing_gives_the_parent_outputs_at_step_0(tmp_path, backbone):
    parent = _save_parent(tmp_path / "parent", _config(backbone, ["a", "b"]))
    y, gamma, cond = _inputs(6, 2)
    with torch.no_grad():
        ref = parent(y, gamma, **cond).velocity
        # the float noise of the parent itself: the same rows computed in a batch of 3
        noise = (parent(y[:3], gamma[:3], **{k: v[:3] for k, v in cond.items()}).velocity - ref[:3]).abs().max()
    # the new key "new" between the parent's two, its reward missing in every row
    child_cfg = _config(backbone, ["a", "new", "b"])
    rewards = torch.stack([cond["rewards"][:, 0], torch.full((6,), float("nan")), cond["rewards"][:, 1]], 1)
    child = _child(tmp_path / "parent", child_cfg)
    assert child.config.conditioning.masked_when_missing == ["new"]
    with torch.no_grad():
        same = (child(y, gamma, **{**cond, "rewards": rewards}).velocity - ref).abs().max()
        asked = rewards.clone()
        asked[:, 1] = 0.7
        controlled = (child(y, gamma, **{**cond, "rewards": asked}).velocity - ref).abs().max()
    # measured 0.0 for both tiny models (outputs up to ~5); on the 3M-parameter cpu_tiny RIN 2.9e-6, where the parent
    # itself moves by 2.6e-6 between batches of 6 and 3: 1e-5 leaves room for other CPUs' kernels
    assert same <= 1e-5, f"{same} (the parent's own noise: {noise})"
    assert controlled > 1e-2  # a given value of the new reward does change the output
    # the test can fail: the official rule (a missing reward = its position embedding alone) moves every output
    unmasked = _child(tmp_path / "parent", child_cfg, masked=False)
    with torch.no_grad():
        moved = (unmasked(y, gamma, **{**cond, "rewards": rewards}).velocity - ref).abs().max()
    assert moved > 1e-2, moved  # measured: RIN 0.55, UNet 0.14


def test_a_dropped_key_is_removed_and_the_others_keep_their_tensors_by_name(tmp_path):
    parent = _save_parent(tmp_path / "parent", _config("rin", ["a", "b", "c"]))
    source = load_parent(str(tmp_path / "parent"))
    cfg = child_model_config(_config("rin", ["c", "a"]), source.config)  # b dropped, the others reordered
    assert cfg.conditioning.masked_when_missing == []
    child = MiroGenerator(cfg)
    report = load_parent_weights(source, child, None)
    assert report.new == [] and report.dropped == [
        "network.conditioner.reward_embedders.b.*", "network.conditioner.reward_position[b]",
        "text_encoder.* (the parent trained its text encoder; this run's is frozen)"]  # no encoder given here
    mine, theirs = child.network.conditioner, parent.network.conditioner
    assert torch.equal(mine.reward_position[0], theirs.reward_position[2])
    assert torch.equal(mine.reward_position[1], theirs.reward_position[0])
    for key in ("a", "c"):
        for (name, p), q in zip(mine.reward_embedders[key].state_dict().items(),
                                theirs.reward_embedders[key].state_dict().values()):
            assert torch.equal(p, q), name
    assert "b" not in mine.reward_embedders
    assert report.loaded == len(child.state_dict())  # everything else came from the parent


def test_the_calibration_note_says_which_kept_keys_mean_the_same(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    scores = {k: rng.normal(size=200) for k in ("a", "b")}
    _save_parent(tmp_path / "parent", _config("rin", ["a", "b"]), Calibration.fit(scores))
    parent = load_parent(str(tmp_path / "parent"))
    data = Calibration.fit({"a": scores["a"], "b": scores["b"] + 1.0, "new": rng.normal(size=200)})
    note = calibration_note(parent, ["a", "b", "new"], DatasetInfo(calibration=data))
    assert "the parent's for a (same raw-score bins)" in note
    assert "recalibrated on this data for b" in note and "new" not in note.split("for b")[1]


# -- `mirokit train ... train.init_from=...` --------------------------------------------------------------------
def _train(tmp_path: Path, out: Path, *overrides: str, capsys=None) -> int:
    """`mirokit train` on a tiny RIN run config written to a YAML file (the CLI path, errors as one line)."""
    config = tmp_path / f"{out.name}.yaml"
    config.write_text(yaml.safe_dump(to_dict(tiny_run(out, "train.batch_size=8", "train.log_every=1",
                                                      "train.precision=fp32", "optim.warmup_steps=1",
                                                      "train.checkpoint_every=0", *overrides))))
    return main(["train", "--config", str(config)])


@pytest.fixture(scope="module")
def parent_run(tmp_path_factory):
    """A tiny parent trained on the toy data with the reward brightness (its export is the parent folder)."""
    tmp = tmp_path_factory.mktemp("parent")
    assert _train(tmp, tmp / "run", "model.reward_keys=[brightness]", "train.steps=60", "train.batch_size=16",
                  "optim.lr=0.003", "train.checkpoint_every=60", "train.log_every=20") == 0
    return tmp / "run"


@pytest.mark.parametrize("keys, new, dropped", [
    ("[brightness]", [], []),
    ("[brightness,size]", ["size"], []),  # a reward added
    ("[size]", ["size"], ["brightness"]),  # one dropped, one added
])
def test_a_fine_tune_starts_from_its_parent(parent_run, tmp_path, capsys, keys, new, dropped):
    fresh, tuned = tmp_path / "fresh", tmp_path / "tuned"
    assert _train(tmp_path, fresh, f"model.reward_keys={keys}", "train.steps=1") == 0
    capsys.readouterr()
    assert _train(tmp_path, tuned, f"model.reward_keys={keys}", "train.steps=2",
                  f"train.init_from={parent_run / 'model'}") == 0
    out = capsys.readouterr().out
    report = next(line for line in out.splitlines() if line.startswith("init_from "))
    assert f"init_from {parent_run / 'model'} (mirokit): loaded " in report
    initialised, gone = report.split(", dropped: ")
    for key in new:
        assert f"network.conditioner.reward_embedders.{key}.*" in initialised
    for key in dropped:
        assert f"network.conditioner.reward_embedders.{key}.*" in gone
    first_fresh, first_tuned = read_metrics(fresh)[0], read_metrics(tuned)[0]
    assert first_tuned["step"] == first_fresh["step"] == 1
    # measured: a fresh start's first mse 2.5-2.9 (loss 3.2-3.5), the fine-tune's 0.44-0.52 (loss 0.17-0.34)
    assert first_tuned["mse"] < 0.4 * first_fresh["mse"], (first_tuned, first_fresh)
    assert first_tuned["loss"] < first_fresh["loss"] - 1.5
    model = tuned / "model"
    meta = json.loads((model / "pipeline.json").read_text())
    assert meta["parent"] == {"init_from": str(parent_run / "model"), "variant": None, "revision": None}
    assert "base_model" not in meta  # a local parent is not a hub id
    assert "| started from | `model` (a local folder)" in (model / "README.md").read_text()
    pipe = MiroPipeline.from_pretrained(model)
    assert pipe.reward_keys == yaml.safe_load(keys) and pipe.generator.config.conditioning.masked_when_missing == new
    images = pipe(["a red circle", "a blue square"], steps=2, output_type="numpy")
    assert images.shape == (2, 16, 16, 3) and images.std() > 1


def test_a_run_checkpoint_is_a_parent_and_a_resume_wins_over_init_from(parent_run, tmp_path, capsys):
    tuned = tmp_path / "tuned"
    # the parent's run folder: its newest checkpoint's EMA
    assert _train(tmp_path, tuned, "model.reward_keys=[brightness,size]", "train.steps=2",
                  "train.checkpoint_every=1", f"train.init_from={parent_run}") == 0
    report = capsys.readouterr().out
    assert f"init_from {parent_run} (checkpoint): loaded " in report
    ema = MiroPipeline.from_pretrained(parent_run / "model").generator.state_dict()
    # continued with a parent that no longer exists: never read, the checkpoint's parent record and masked key stay
    assert _train(tmp_path, tuned, "model.reward_keys=[brightness,size]", "train.steps=3",
                  "train.checkpoint_every=1", f"train.init_from={tmp_path / 'gone'}") == 0
    out = capsys.readouterr().out
    assert f"train.init_from {tmp_path / 'gone'} ignored: resuming" in out and "init_from " not in out.split(
        "ignored")[1]
    assert [r["step"] for r in read_metrics(tuned)] == [1, 2, 3]
    meta = json.loads((tuned / "model" / "pipeline.json").read_text())
    assert meta["parent"]["init_from"] == str(parent_run) and meta["step"] == 3
    pipe = MiroPipeline.from_pretrained(tuned / "model")
    assert pipe.generator.config.conditioning.masked_when_missing == ["size"]
    moved = max((pipe.generator.state_dict()[k] - v).abs().max().item() for k, v in ema.items()
                if not k.endswith("reward_position"))  # one row more in the fine-tune
    assert 0 < moved < 0.05  # three small steps away from the parent, not a fresh start


@pytest.mark.parametrize("override, says", [
    ("text_encoder.dim=16", "tensor network.conditioner.text_proj.weight is (32, 32) in the parent and (32, 16) in "
                            "this run (model.text_dim"),
    ("model.backbone.latents_dim=64", "in the parent and"),
])
def test_a_mismatched_parent_is_one_line(parent_run, tmp_path, capsys, override, says):
    overrides = [f"train.init_from={parent_run / 'model'}", "model.reward_keys=[brightness]", "train.steps=1", override]
    assert _train(tmp_path, tmp_path / "bad", *overrides) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err and err.startswith("mirokit train: error: train.init_from ")
    assert not (tmp_path / "bad" / "checkpoints").exists()


def test_a_missing_parent_is_one_line(tmp_path, capsys):
    assert _train(tmp_path, tmp_path / "r", f"train.init_from={tmp_path / 'nothing'}", "train.steps=1") == 2
    err = capsys.readouterr().err.strip()
    assert err == f"mirokit train: error: train.init_from: model directory not found: {tmp_path / 'nothing'}"


# -- the released checkpoints (seeded official-format folders, as in tests/models/test_official_pipeline.py) ---------
def _official_kit():
    pytest.importorskip("miro.models.networks.rin", reason=MIRO_T2I_MISSING)
    path = Path(__file__).resolve().parents[1] / "models" / "test_official_pipeline.py"
    spec = importlib.util.spec_from_file_location("official_pipeline_kit", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """The seeded official folders, also as the hub cache of nicolas-dufour/miro and nicolas-dufour/miro-ablations."""
    kit = _official_kit()
    root = tmp_path_factory.mktemp("official")
    net, pre = kit._save_official(root / "miro", kit.ALL_KEYS)
    kit._save_official(root / "ablations" / "miro-no-clip", [k for k in kit.ALL_KEYS if k != "clip_score"], seed=1)
    cache = root / "hub"
    for repo, folder in (("miro", root / "miro"), ("miro-ablations", root / "ablations")):
        shutil.copytree(folder, cache / f"models--nicolas-dufour--{repo}" / "snapshots" / SHA)
        (cache / f"models--nicolas-dufour--{repo}" / "refs").mkdir()
        (cache / f"models--nicolas-dufour--{repo}" / "refs" / "main").write_text(SHA)
    return {"root": root, "cache": cache, "net": net, "pre": pre, "keys": kit.ALL_KEYS,
            "t5": build_tiny_t5(root / "t5"), "vae": (build_tiny_vae(root / "vae"), root / "vae")[1]}


@pytest.fixture
def hub_cache(official, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(official["cache"]))  # offline (conftest): the cache answers


def test_an_eighth_reward_on_the_official_network_leaves_its_outputs_unchanged(official):
    keys = [*official["keys"], "my_reward"]
    parent = load_parent(str(official["root"] / "miro"))
    assert parent.kind == "official" and parent.config.reward_keys == official["keys"]
    child = MiroGenerator(child_model_config(replace(parent.config, reward_keys=keys), parent.config)).eval()
    report = load_parent_weights(parent, child, None)
    assert report.new == ["network.conditioner.reward_position[my_reward]",
                          "network.conditioner.reward_embedders.my_reward.*"] and report.dropped == []
    g = torch.Generator().manual_seed(1)
    y, gamma = torch.randn(3, 4, 8, 8, generator=g), torch.rand(3, generator=g)
    text, mask = torch.randn(3, 8, 32, generator=g), torch.ones(3, 8, dtype=torch.bool)
    mask[0, 4:] = False
    rewards = torch.rand(3, 7, generator=g)
    rewards[1, 3] = float("nan")
    prev = torch.randn(3, 12, 64, generator=g)
    batch = {"y": y.clone(), "gamma": gamma, "text_tokens_embeddings": text, "text_tokens_mask": mask,
             "previous_latents": prev, **{f"{k}_coherence": rewards[:, i] for i, k in enumerate(official["keys"])}}
    ours = torch.cat([rewards, torch.full((3, 1), float("nan"))], 1)
    with torch.no_grad():
        ref_v, ref_z = official["pre"](official["net"], batch)  # the official code on its own seven rewards
        out = child(y, gamma, text=text, text_mask=mask, rewards=ours, self_cond=prev)
        asked = child(y, gamma, text=text, text_mask=mask, rewards=torch.nan_to_num(ours, nan=0.9), self_cond=prev)
    # measured 1.4e-6 (velocity) and 3.8e-6 (self-conditioning state), as for the parent's own conversion (the
    # official parity tests hold it to 1e-5)
    assert (out.velocity - ref_v).abs().max() <= 1e-5 and (out.self_cond - ref_z).abs().max() <= 1e-5
    assert (asked.velocity - ref_v).abs().max() > 1e-2
    # without the masking (the official rule for the eighth key too) every output moves: measured 0.18
    plain = MiroGenerator(replace(parent.config, reward_keys=keys)).eval()
    load_parent_weights(load_parent(str(official["root"] / "miro")), plain, None)
    with torch.no_grad():
        moved = plain(y, gamma, text=text, text_mask=mask, rewards=ours, self_cond=prev).velocity
    assert (moved - ref_v).abs().max() > 1e-2


def test_released_checkpoints_by_hub_id(official, hub_cache):
    miro = load_parent("nicolas-dufour/miro")
    assert miro.kind == "official" and miro.pinned == f"nicolas-dufour/miro@{SHA}"
    no_clip = load_parent("nicolas-dufour/miro-ablations:miro-no-clip")
    assert no_clip.pinned == f"nicolas-dufour/miro-ablations:miro-no-clip@{SHA}"
    assert no_clip.config.reward_keys == [k for k in official["keys"] if k != "clip_score"]
    local = load_parent(f"{official['root'] / 'ablations'}:miro-no-clip")  # a local copy of the ablations repo
    assert local.config.reward_keys == no_clip.config.reward_keys and local.pinned.endswith(":miro-no-clip")


def _official_run(official, source: str, keys: list[str], *extra: str) -> list[str]:
    """Overrides of a tiny run with the official folder's architecture, its T5 and VAE, on 16x16 toy images."""
    from mirokit.models.official import convert_official_config

    model = to_dict(convert_official_config(json.loads((official["root"] / "miro" / "config.json").read_text())))
    model["reward_keys"] = keys
    return [f"model={json.dumps(model)}",
            f"text_encoder={{kind: hf_t5, name_or_path: {official['t5']}, max_length: 8}}",
            f"image_space={{kind: vae, name_or_path: {official['vae']}, input: pixels}}", f"train.init_from={source}",
            "flow.self_cond_prob=0.5", *extra]


def test_fine_tuning_the_released_model_with_an_eighth_reward(official, hub_cache, tmp_path, capsys):
    keys = [*official["keys"], "brightness"]  # the official order kept, the toy data's brightness appended
    out = tmp_path / "tuned"
    config = tmp_path / "c.yaml"
    base = to_dict(tiny_run(out, "train.batch_size=4", "train.steps=2", "train.log_every=1", "train.precision=fp32",
                            "optim.warmup_steps=1", "train.checkpoint_every=0"))
    config.write_text(yaml.safe_dump(base))
    assert main(["train", "--config", str(config), *_official_run(official, "nicolas-dufour/miro", keys)]) == 0
    report = capsys.readouterr().out
    assert f"init_from nicolas-dufour/miro@{SHA} (official): loaded " in report
    assert "newly initialised: ['network.conditioner.reward_position[brightness]', " \
           "'network.conditioner.reward_embedders.brightness.*'], dropped: []" in report
    assert "calibration: the parent has no calibration.json" in report
    meta = json.loads((out / "model" / "pipeline.json").read_text())
    assert meta["parent"] == {"init_from": "nicolas-dufour/miro", "variant": None, "revision": SHA}
    card = (out / "model" / "README.md").read_text()
    assert "base_model: nicolas-dufour/miro" in card and "| started from | `nicolas-dufour/miro`, revision" in card
    pipe = MiroPipeline.from_pretrained(out / "model")
    assert pipe.reward_keys == keys and pipe.generator.config.conditioning.masked_when_missing == ["brightness"]
    image = pipe("a red circle", steps=2, rewards={"brightness": 0.8}).images[0]
    assert image.size == (16, 16)


def test_init_from_prepare_pins_the_hub_revision_and_keeps_the_run_config_otherwise(official, hub_cache, tmp_path):
    cfg = tiny_run(tmp_path / "r", "train.init_from=nicolas-dufour/miro-ablations:miro-no-clip",
                   "model.reward_keys=[aesthetic_score, extra]")
    init = InitFrom.prepare(cfg, is_main=False)
    assert init.cfg.train.init_from == f"nicolas-dufour/miro-ablations:miro-no-clip@{SHA}"
    assert init.cfg.model.conditioning.masked_when_missing == ["extra"]
    assert init.cfg.model.backbone == cfg.model.backbone and init.parent.kind == "official"
