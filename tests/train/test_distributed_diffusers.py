"""`mirokit train` with a diffusers backbone (tiny Sana and SD3 transformers) on 2 CPU ranks (gloo): FSDP2
(the transformer's `transformer_blocks` are the sharded units) trains 2 steps, checkpoints, and 2 ranks resume
it to step 3; DDP trains the 3 steps at once. Both are compared with one process at the same global batch.

The helpers and the tolerance are those of test_parallel.py (the full-Trainer distributed test): weights are
compared by their update, ||(w_run - w_ref)|| / ||(w_ref - w_init)|| over the elements that training moves, and
the tolerance is NOISE_FACTOR noise floors, the floor being the same comparison between one process and one
process summing its gradient in 2 parts (grad_accum=2: the order of the split across 2 ranks), measured in the
same test, so it holds on every CPU's kernels.

Slow (35-50 s on 2 cores: 6 launches of 2 processes importing torch and diffusers): `make test-all` runs it.
"""

import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs import PINNED_PRECISION
from test_parallel import MAX_FLOOR, MIN_FLOOR, NOISE_FACTOR, _launch, update_difference

from mirokit.config import to_dict
from mirokit.pipeline import MiroPipeline
from mirokit.train import checkpoint as ckpt
from mirokit.train.config import load_run_config
from mirokit.train.loop import Trainer, train
from mirokit.train.metrics import read_metrics

pytestmark = pytest.mark.slow

STEPS = 3
TEXT = "text_encoder={kind: tokens, vocab_size: 64, dim: 32, max_length: 8, num_layers: 1, num_heads: 4}"
TRANSFORMERS = {
    "sana": "{in_channels: 3, out_channels: 3, sample_size: 16, patch_size: 2, num_layers: 2, num_attention_heads: 2, "
            "attention_head_dim: 16, num_cross_attention_heads: 2, cross_attention_head_dim: 16, "
            "cross_attention_dim: 32, caption_channels: 32, mlp_ratio: 2.5}",
    "sd3": "{in_channels: 3, out_channels: 3, sample_size: 16, patch_size: 2, num_layers: 2, num_attention_heads: 2, "
           "attention_head_dim: 16, joint_attention_dim: 32, caption_projection_dim: 32, pooled_projection_dim: 32, "
           "pos_embed_max_size: 16}",
}
OPTIONS = ["model.image_size=16", "model.backbone.reward_dim=16", TEXT, PINNED_PRECISION,
           "data={kind: toy, num_samples: 256}", "train.batch_size=8", "train.log_every=1", "train.progress=false",
           "train.threads=1", "loader.num_workers=0", "optim.warmup_steps=1", f"optim.total_steps={STEPS}",
           "train.checkpoint_every=2", "train.device=cpu", "train.ema_decay=0.5", "train.ema_warmup=false",
           "train.keep_checkpoints=0"]


def run_config(family: str, out_dir: Path, *overrides: str):
    """cpu_tiny_<family> at 16x16 with a smaller transformer and text encoder, writing into out_dir."""
    return load_run_config(f"cpu_tiny_{family}", [*OPTIONS, f"model.backbone.transformer_config={TRANSFORMERS[family]}",
                                                  f"out_dir={out_dir}", *overrides])


@pytest.fixture(scope="module", params=["sana", "sd3"])
def family_runs(request, tmp_path_factory):
    family = request.param
    root = tmp_path_factory.mktemp(f"diffusers_{family}")
    config = root / "run.yaml"
    config.write_text(yaml.safe_dump(to_dict(run_config(family, root / "single", f"train.steps={STEPS}"))))

    def here(name, *overrides):
        train(run_config(family, root / name, *overrides))

    here("single", f"train.steps={STEPS}")
    here("noise", f"train.steps={STEPS}", "train.grad_accum=2")
    _launch(config, root / "fsdp", 2, "train.parallel=fsdp2", "train.steps=2")  # checkpoints step 2 and stops
    _launch(config, root / "fsdp", 2, "train.parallel=fsdp2", f"train.steps={STEPS}")  # resumes it
    _launch(config, root / "ddp", 2, "train.parallel=ddp", f"train.steps={STEPS}")
    return family, root


@pytest.fixture(scope="module")
def probe(family_runs):
    """(initial weights, moving): see test_parallel.probe."""
    family, root = family_runs
    trainer = Trainer(run_config(family, root / "probe"))
    init = {name: value.detach().clone() for name, value in trainer.module.state_dict().items()}
    trainer.optimizer.step = lambda: None  # keep the first step's gradients
    trainer.optimizer.zero_grad = lambda set_to_none=True: None
    trainer.train_step(next(iter(trainer.loader())))
    grads = {name: p.grad for name, p in trainer.module.named_parameters() if p.grad is not None}
    top = max(g.abs().max() for g in grads.values())
    mask = {name: g.abs() > 1e-8 * top for name, g in grads.items()}
    assert sum(int((~m).sum()) for m in mask.values()) < 0.1 * sum(m.numel() for m in mask.values())
    return init, mask


def _weights(root: Path, run: str, prefix: str) -> dict:
    return ckpt.read_tensors(root / run / "checkpoints" / ckpt.checkpoint_name(STEPS), prefix)


def test_fsdp2_with_resume_and_ddp_match_one_process(family_runs, probe):
    family, root = family_runs
    init, mask = probe
    floor = max(update_difference({k: v for k, v in _weights(root, "noise", p).items() if k in mask},
                                  {k: v for k, v in _weights(root, "single", p).items() if k in mask}, init, mask)
                for p in ("model.", "ema."))
    assert floor <= MAX_FLOOR, f"{family}: the noise run is {floor:.2e} from one process: not float noise"
    tolerance = NOISE_FACTOR * max(floor, MIN_FLOOR)

    want = [r["loss"] for r in read_metrics(root / "single")]
    assert want[-1] != want[0]
    for run in ("fsdp", "ddp"):
        rows = read_metrics(root / run)
        assert [r["step"] for r in rows] == list(range(1, STEPS + 1))  # the resume continued the file
        torch.testing.assert_close(torch.tensor([r["loss"] for r in rows]), torch.tensor(want), atol=1e-5, rtol=1e-5)
        for prefix in ("model.", "ema."):
            got, ref = _weights(root, run, prefix), _weights(root, "single", prefix)
            assert got.keys() == ref.keys()
            for name in ref.keys() - mask.keys():  # buffers, and parameters without a gradient: never trained
                assert torch.equal(got[name], ref[name]), f"{family} {run} {prefix}{name} differs"
            distance = update_difference({k: got[k] for k in mask}, {k: ref[k] for k in mask}, init, mask)
            assert distance <= tolerance, f"{family} {run} {prefix}: {distance:.2e} from one process, " \
                                          f"tolerance {tolerance:.2e}"

    state = ckpt.read_state(root / "fsdp" / "checkpoints" / ckpt.checkpoint_name(2))
    assert state["world_size"] == 2 and state["step"] == 2
    shards = [p.name for p in (root / "fsdp" / "checkpoints" / ckpt.checkpoint_name(2) / "train_state").iterdir()]
    assert sum(s.endswith(".safetensors") for s in shards) == 2  # one shard per rank
    pipe = MiroPipeline.from_pretrained(root / "fsdp" / "model")  # the gathered export loads as a model folder
    assert type(pipe.generator.network.trunk).__name__ == {"sana": "SanaTrunk", "sd3": "SD3Trunk"}[family]
