"""train.trainable and train.lora: only what they name trains (frozen weights bit-identical to the start), the run
resumes exactly, and the export is a plain model folder (LoRA merged: W + alpha/rank * B @ A)."""

import sys

import pytest
import torch
import yaml
from runs import rank_envs, run_processes, tiny_run
from safetensors.torch import load_file
from torch import nn

from mirokit.config import ConfigError, to_dict
from mirokit.pipeline import MiroPipeline
from mirokit.train import checkpoint as ckpt
from mirokit.train.ema import EMA
from mirokit.train.export import export_checkpoint
from mirokit.train.loop import Trainer, train
from mirokit.train.trainable import LoraConfig, add_lora, matches, prepare

COMMON = ["model.reward_keys=[brightness,size]", "train.batch_size=8", "optim.warmup_steps=1", "optim.lr=1e-2",
          "optim.total_steps=6", "train.log_every=1", "train.precision=fp32", "train.keep_checkpoints=0"]
HEADS = "train.trainable=[conditioner.reward_embedders, conditioner.mixer]"
LORA = "train.lora={rank: 4, alpha: 8, targets: [q, kv, qkv, out]}"
SCALE = 8 / 4


def _initial(tmp_path, *overrides) -> tuple[dict, set]:
    """The TrainModule's state before the first step (the same seed builds the same model), and the names of its
    trained parameters."""
    trainer = Trainer(tiny_run(tmp_path / "init", *COMMON, *overrides))
    trainer.metrics.close()
    return ({k: v.detach().clone() for k, v in trainer.module.state_dict().items()},
            {n for n, p in trainer.module.named_parameters() if p.requires_grad})


def _last(run_dir, prefix) -> dict:
    return ckpt.read_tensors(ckpt.latest_checkpoint(run_dir), prefix)


def _straight_and_resumed(tmp_path, *overrides):
    """(straight run dir, resumed run dir): 6 steps in one go, and 3 + 3 with a restart."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(tiny_run(straight, *COMMON, "train.steps=6", "train.checkpoint_every=3", *overrides))
    train(tiny_run(resumed, *COMMON, "train.steps=3", *overrides))
    train(tiny_run(resumed, *COMMON, "train.steps=6", *overrides))
    for prefix in ("model.", "ema.", "optim."):
        want, got = _last(straight, prefix), _last(resumed, prefix)
        assert want.keys() == got.keys()
        for k in want:
            assert torch.equal(want[k], got[k]), f"resume differs at {prefix}{k}"
    return straight, resumed


def test_names_match_any_dotted_tail_and_unknown_ones_are_one_line():
    name = "generator.network.conditioner.mixer.0.sa.qkv.weight"
    for pattern in ("conditioner.mixer", "mixer.*", "*.sa.qkv.weight", name, "qkv", "generator"):
        assert matches(name, pattern), pattern
    for pattern in ("mix", "xer.0", "sa.q", "qkv.bias", "network.mixer", "text_encoder.*"):
        assert not matches(name, pattern), pattern

    module = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3))
    with pytest.raises(ValueError, match=r"^train.trainable: 'embedders' matches no parameter; names look like 0.we"):
        prepare(module, trainable=["embedders"], lora=None)
    with pytest.raises(ValueError, match=r"^train.lora.targets: 'qkv' matches no Linear layer; names look like 0, "):
        add_lora(module, LoraConfig(targets=["qkv"]))
    with pytest.raises(ConfigError, match="rank must be >= 1"):
        tiny_run("x", "train.lora={rank: 0}")
    assert tiny_run("x", "train.lora={}").train.lora == LoraConfig()


def test_missing_peft_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # what `import peft` sees when it is not installed
    with pytest.raises(RuntimeError, match=r"^train.lora needs peft: pip install 'mirokit\[lora\]'$"):
        add_lora(nn.Linear(2, 2), LoraConfig())


def test_trainable_freezes_the_rest_resumes_and_exports_a_plain_model(tmp_path, capsys):
    init, trained = _initial(tmp_path, HEADS)
    straight, _ = _straight_and_resumed(tmp_path, HEADS)
    assert "trainable parameters: 15.5K of 277K (5.58%); memory: weights" in capsys.readouterr().out
    weights = _last(straight, "model.")
    assert trained == {k for k in init if (".reward_embedders." in k or ".conditioner.mixer." in k)
                       and not k.endswith((".freqs", ".phases"))}  # parameters, not the Fourier buffers
    assert len(trained) == 22 and weights.keys() == init.keys()
    for k in weights.keys() - trained:
        assert torch.equal(weights[k], init[k]), f"frozen {k} changed"
    for k in trained:
        assert not torch.equal(weights[k], init[k]), f"trained {k} did not change"
    # the EMA averages the trained parameters (and buffers) only; the frozen ones come from the live model
    ema = _last(straight, "ema.")
    assert {k for k in ema if not k.endswith((".freqs", ".phases"))} == trained
    # the test can fail: without train.trainable the same steps move the weights it keeps
    train(tiny_run(tmp_path / "all", *COMMON, "train.steps=1"))
    moved = _last(tmp_path / "all", "model.")
    assert all(not torch.equal(moved[k], init[k]) for k in ("generator.network.trunk.latents",
                                                            "generator.network.conditioner.text_proj.weight"))

    pipe = MiroPipeline.from_pretrained(straight / "model")
    exported = {"generator." + k: v for k, v in pipe.generator.state_dict().items()}
    for k, value in exported.items():
        want = ema[k] if k in ema else init[k]
        assert torch.equal(value, want), k
    # `mirokit export` of the checkpoint takes the frozen weights from the raw ones: the same model
    again = load_file(str(export_checkpoint(ckpt.latest_checkpoint(straight), tmp_path / "out") / "model.safetensors"))
    final = load_file(str(straight / "model" / "model.safetensors"))
    assert again.keys() == final.keys() and all(torch.equal(again[k], final[k]) for k in final)


def test_lora_trains_adapters_only_resumes_and_exports_merged_weights(tmp_path, monkeypatch):
    ema_now = ["train.ema_decay=0.0", "train.ema_warmup=false"]  # EMA = the live merged weights: checkable by hand
    init, adapters = _initial(tmp_path, LORA, *ema_now)
    straight, _ = _straight_and_resumed(tmp_path, LORA, *ema_now)
    weights = _last(straight, "model.")
    assert adapters == {k for k in weights if ".lora_A." in k or ".lora_B." in k}
    assert len(adapters) == 2 * 24 and weights.keys() == init.keys()
    for k in weights.keys() - adapters:
        assert torch.equal(weights[k], init[k]), f"frozen {k} changed"
    for k in adapters:
        assert not torch.equal(weights[k], init[k]), f"adapter {k} did not train"
    layers = {k[len("generator."):].split(".lora_A.")[0] for k in adapters if ".lora_A." in k}

    monkeypatch.setitem(sys.modules, "peft", None)  # the exported folder needs no peft
    exported = load_file(str(straight / "model" / "model.safetensors"))
    assert not [k for k in exported if "lora" in k or "base_layer" in k]
    pipe = MiroPipeline.from_pretrained(straight / "model")
    state = pipe.generator.state_dict()
    layer = "network.trunk.rin_blocks.1.processer_sa.0.sa.qkv"
    base, a, b = (weights[f"generator.{layer}.{p}"] for p in ("base_layer.weight", "lora_A.default.weight",
                                                            "lora_B.default.weight"))
    delta = SCALE * b @ a
    assert delta.abs().max() > 1e-3  # the adapter moved the layer: merging is visible
    torch.testing.assert_close(state[f"{layer}.weight"], base + delta, rtol=0, atol=1e-6)
    ema = _last(straight, "ema.")  # the EMA holds the merged weights under the exported names: the export is it
    assert f"generator.{layer}.weight" in ema and not [k for k in ema if "lora" in k or "base_layer" in k]
    assert all(torch.equal(state[k[len("generator."):]], v) for k, v in ema.items() if k.startswith("generator."))
    for k, value in state.items():
        owner, leaf = k.rsplit(".", 1)
        start = init.get(f"generator.{k}", init.get(f"generator.{owner}.base_layer.{leaf}"))
        if owner in layers and leaf == "weight":  # merged: moved
            assert not torch.equal(value, start), k
        else:  # everything else: the initial weights
            assert torch.equal(value, start), k
    again = load_file(str(export_checkpoint(ckpt.latest_checkpoint(straight), tmp_path / "out") / "model.safetensors"))
    assert again.keys() == exported.keys() and all(torch.equal(again[k], exported[k]) for k in exported)


def test_the_ema_averages_the_merged_lora_weight():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    prepare(model, trainable=[], lora=None)  # nothing asked: nothing changes
    assert all(p.requires_grad for p in model.parameters())
    add_lora(model, LoraConfig(rank=2, alpha=4, targets=["0"]))
    start = model[0].base_layer.weight.detach().clone()
    ema = EMA(model, decay=0.5, warmup=False)
    assert sorted(ema.shadow) == ["0.weight"] and ema.fixed_names == ["0.bias", "1.weight", "1.bias"]
    a0 = model[0].lora_A.default.weight.detach().clone()
    with torch.no_grad():  # both factors move: the average of B A differs from (average of B) (average of A)
        model[0].lora_B.default.weight.fill_(0.5)
        model[0].lora_A.default.weight.add_(0.25)
    ema.update(model)
    b1, a1 = model[0].lora_B.default.weight, model[0].lora_A.default.weight
    torch.testing.assert_close(ema.shadow["0.weight"], 0.5 * start + 0.5 * (start + 2.0 * (b1 @ a1)), rtol=0, atol=1e-6)
    assert not torch.allclose(ema.shadow["0.weight"], start + 2.0 * ((0.5 * b1) @ (0.5 * a0 + 0.5 * a1)), atol=1e-3)
    full = ema.full_state()
    assert list(full) == ["0.weight", "0.bias", "1.weight", "1.bias"]
    plain = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    ema.copy_to(plain)
    assert torch.equal(plain[1].weight, model[1].weight) and torch.equal(plain[0].weight, ema.shadow["0.weight"])


def _same_run(got_dir, want_dir, init: dict) -> None:
    """Two runs' last checkpoints hold the same weights and EMA up to float noise (||got - want|| / ||want - init||
    < 1e-3: measured ~2e-5 for FSDP2 against one process), and the same frozen weights bit for bit (the initial)."""
    for prefix in ("model.", "ema."):
        got, want = _last(got_dir, prefix), _last(want_dir, prefix)
        assert got.keys() == want.keys()
        num = den = 0.0
        for k in want:
            if prefix == "model." and ".lora_" not in k and ".reward_embedders." not in k:
                assert torch.equal(got[k], init[k]), f"frozen {k} changed"
            start = init.get(k, init.get(k.replace(".weight", ".base_layer.weight")))
            num += (got[k].double() - want[k].double()).pow(2).sum().item()
            den += (want[k].double() - start.double()).pow(2).sum().item()
        assert den > 0 and (num / den) ** 0.5 < 1e-3, (got_dir.name, prefix, (num / den) ** 0.5)


@pytest.mark.slow
def test_fsdp2_two_ranks_train_only_what_they_name(tmp_path):
    """2 gloo ranks, FSDP2: frozen base weights and trained adapters in the same sharded unit (LoRA inside the
    blocks), plus fully trained reward embedders and a frozen text encoder; the same as one process up to float
    noise, and its sharded checkpoint resumes in one process. ~17 s (two process start-ups)."""
    options = [*COMMON, LORA, "train.trainable=[conditioner.reward_embedders]", "train.device=cpu",
               "train.checkpoint_every=0", "train.ema_decay=0.5", "train.ema_warmup=false"]
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(to_dict(tiny_run(tmp_path / "fsdp", *options, "train.steps=3"))))
    cmd = [sys.executable, "-m", "mirokit.cli.main", "train", "--config", str(config), "train.parallel=fsdp2"]
    run_processes([cmd, cmd], rank_envs(2), timeout=300, what="FSDP2 training")
    init, _ = _initial(tmp_path, *options)
    train(tiny_run(tmp_path / "single", *options, "train.steps=3"))
    _same_run(tmp_path / "fsdp", tmp_path / "single", init)
    got = load_file(str(tmp_path / "fsdp" / "model" / "model.safetensors"))  # gathered and merged by 2 ranks
    want = load_file(str(tmp_path / "single" / "model" / "model.safetensors"))
    assert got.keys() == want.keys()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    MiroPipeline.from_pretrained(tmp_path / "fsdp" / "model")
    for run in ("fsdp", "single"):  # the 2-rank checkpoint (model, adapters' optimizer state, EMA) in one process
        train(tiny_run(tmp_path / run, *options, "train.steps=4"))
    _same_run(tmp_path / "fsdp", tmp_path / "single", init)
