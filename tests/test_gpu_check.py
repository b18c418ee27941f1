"""bench/gpu_check.py, the one command to run on a GPU (issue 35), runs here on CPU with tiny models so that it
works the day a GPU is at hand: every row, one table, exit status 1 on any failure."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MIRO_T2I_MISSING

pytest.importorskip("miro.models.networks.rin", reason=MIRO_T2I_MISSING)  # the official network is a row

ROOT = Path(__file__).resolve().parents[1]
ROWS = ["train step, quick RIN, bf16, eager: mirokit", "train step, quick RIN, bf16, eager: official CADRINTextCond",
        "train step, quick RIN, bf16, compiled (aot_eager): mirokit",
        "train step, quick RIN, bf16, compiled (aot_eager): official CADRINTextCond",
        "train step + clip + AdamW, mirokit, bf16 autocast",
        "train step + clip + AdamW, FSDP2 on one rank (bf16 params, fp32 reduce)",
        "sampling, 2 Euler steps, guidance, batch 2, fp32",
        *[f"scorer {key} (tiny)" for key in ("clip_score", "aesthetic_score", "pick_a_score_score", "sciscore_score",
                                             "hpsv2_score", "image_reward_score", "vqa_score")],
        "encode batch: VAE moments + T5 states (tiny)",
        "smoke: loader batch -> pinned -> non_blocking copy",
        "smoke: train 2 steps (loader, AdamW, EMA; bf16 on CUDA) + checkpoint + export",
        "smoke: exported pipeline -> PIL, fp32 and bf16", "smoke: studio job queue: a generate job",
        "smoke: GenEval detector + colour classifier", "smoke: recaption model generate (tiny LLaVA)"]


def test_the_cpu_quick_run_prints_every_row(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--device", "cpu", "--quick"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-4000:]
    assert "## GPU check on CPU (not a GPU figure)" in run.stdout
    table = [line for line in run.stdout.splitlines() if line.startswith("| ") and not line.startswith("| check")]
    assert [line.split(" | ")[0][2:] for line in table] == ROWS
    cells = [line.strip("| ").split(" | ") for line in table]
    assert all(len(c) == 6 and c[5].startswith(("ok", "batch", "compile", "weights", "4 network")) for c in cells)
    assert all(float(c[1]) > 0 and c[2].endswith("%") for c in cells[:6])  # images/s and MFU of the steps


def test_a_failing_row_is_a_failed_row_and_a_failed_run(capsys):
    sys.path.insert(0, str(ROOT / "bench"))
    import gpu_check

    table = gpu_check.Table()
    table.run("fine", lambda: [("fine", 2.0, None, None, None, "ok")])
    table.run("broken", lambda: 1 / 0)
    table.print()
    out = capsys.readouterr().out
    assert "| broken | - | - | - |" in out and "FAILED |" in out
    assert [check for check, _ in table.failures] == ["broken"] and "ZeroDivisionError" in table.failures[0][1]
