"""The real-scale pipeline on CPU with tiny random models in hub layout, through the CLI only:

recaption (a tiny LLaVA) -> score both captions -> calibrate -> encode (200 images) -> train 20 steps drawing
both captions under torchrun --nproc_per_node 2 (gloo), killed after its first checkpoint and resumed -> sample
-> decoded PNGs.
"""

import io
import json
import os
import subprocess
import sys
import tarfile
import time

import numpy as np
from conftest import build_tiny_t5, build_tiny_vae
from PIL import Image

from mirokit.cli.main import main
from mirokit.data.toy import ToyShapesDataset
from mirokit.train.metrics import read_metrics

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "captions"))
from vlm_kit import save_tiny_llava

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "train"))
from runs import alive, free_port, kill_tree


def _write_shards(folder, n=200, per_shard=100):
    toy = ToyShapesDataset(n, image_size=32, seed=3)
    folder.mkdir()
    for s in range(0, n, per_shard):
        with tarfile.open(folder / f"{s // per_shard:05d}.tar", "w") as tar:
            for i in range(s, s + per_shard):
                pixels = ((toy.images([i])[0].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
                buf = io.BytesIO()
                Image.fromarray(pixels).save(buf, format="PNG")
                for ext, data in (("png", buf.getvalue()), ("txt", toy.captions[i].encode()), ("json", b"{}")):
                    info = tarfile.TarInfo(f"{i:05d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def test_score_calibrate_encode_train_kill_resume_sample(tmp_path, capsys):
    t5 = build_tiny_t5(tmp_path / "t5")
    build_tiny_vae(tmp_path / "vae", sample_size=32)
    _write_shards(tmp_path / "raw")
    llava = save_tiny_llava(tmp_path / "llava")
    assert main(["recaption", str(tmp_path / "raw"), "--model", str(llava), "--max-new-tokens", "6",
                 "--write-shards", "--out", str(tmp_path / "captions"), "--num-workers", "0"]) == 0
    with tarfile.open(tmp_path / "captions" / "shards" / "00000.tar") as tar:
        synthetic = {m.name for m in tar if m.name.endswith(".synthetic.txt")}
    assert len(synthetic) == 100

    assert main(["score", str(tmp_path / "captions" / "shards"), "--reward", "world_quality", "--caption", "synthetic",
                 "--out", str(tmp_path / "scores"), "--enrich", "--num-workers", "0"]) == 0
    enriched = tmp_path / "scores" / "enriched"
    assert sorted(p.name for p in enriched.glob("*.tar")) == ["00000.tar", "00001.tar"]
    assert main(["calibrate", "fit", str(tmp_path / "scores"), "--caption", "synthetic",
                 "--out", str(tmp_path / "calibration.json")]) == 0
    calibration = json.loads((tmp_path / "calibration.json").read_text())
    assert list(calibration["rewards"]) == ["world_quality"] and calibration["rewards"]["world_quality"]["count"] == 400
    assert main(["encode", str(enriched), "--out", str(tmp_path / "enc"), "--reward", "world_quality",
                 "--caption", "synthetic", "--vae", str(tmp_path / "vae"), "--text-encoder", str(t5),
                 "--max-length", "12", "--image-size", "32", "--batch-size", "50", "--device", "cpu"]) == 0
    assert json.loads((tmp_path / "enc" / "encoding.json").read_text())["samples"] == 200

    run = tmp_path / "run"
    config = {
        "out_dir": str(run),
        "model": {"image_channels": 4, "image_size": 16, "reward_keys": ["world_quality"],
                  "backbone": {"kind": "rin", "patch_size": 2, "data_dim": 32, "latents_dim": 32, "num_latents": 8,
                               "num_blocks": 2, "num_processing_layers": 1, "read_write_heads": 4,
                               "compute_heads": 4, "hidden_multiple": 8},
                  "conditioning": {"num_registers": 2, "mixer_layers": 1, "mixer_heads": 4}, "logvar_channels": 16},
        "text_encoder": {"kind": "hf_t5", "name_or_path": str(t5), "max_length": 12},
        "image_space": {"kind": "vae", "name_or_path": str(tmp_path / "vae"), "normalisation": "stats",
                        "stats": str(tmp_path / "enc" / "latent_stats.json")},
        "data": {"kind": "shards", "path": str(tmp_path / "enc"), "calibration": str(tmp_path / "calibration.json"),
                 "caption_mix": 0.5},
        "loader": {"num_workers": 1},
        "train": {"precision": "fp32", "steps": 20, "batch_size": 8, "log_every": 1, "checkpoint_every": 10,
                  "progress": False, "device": "cpu", "parallel": "fsdp2"},
        "optim": {"name": "lamb", "warmup_steps": 2, "total_steps": 20},
    }
    (tmp_path / "run.yaml").write_text(json.dumps(config))
    def cmd():
        return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(free_port()), "-m", "mirokit.cli.main", "train", "--config", str(tmp_path / "run.yaml")]

    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.Popen(cmd(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    marker = run / "checkpoints" / "step_0000010" / "train_state" / "state.json"
    deadline = time.time() + 300
    while not marker.is_file() and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    killed = kill_tree(first.pid)  # torchrun and its ranks (in sessions of their own), as a preempted node would be
    first.wait()
    assert len(killed) >= 3 and not any(alive(pid) for pid in killed)  # the agent and both ranks
    assert marker.is_file(), first.stdout.read().decode()[-3000:]
    second = subprocess.run(cmd(), env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "resuming from" in second.stdout + second.stderr
    steps = [r["step"] for r in read_metrics(run)]
    assert steps == list(range(1, 21))  # the killed run's later lines were dropped; no step twice

    out = tmp_path / "samples"
    assert main(["sample", "--model", str(run / "model"), "--prompt", "a red circle", "--prompt", "a blue square",
                 "--steps", "3", "--out", str(out)]) == 0
    pngs = sorted(out.glob("*.png"))
    assert [Image.open(p).size for p in pngs] == [(32, 32), (32, 32)]  # decoded by the VAE
    assert (run / "model" / "calibration.json").is_file() and (run / "model" / "uncond_text.safetensors").is_file()
