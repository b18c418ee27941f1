"""The training DataLoader: (seed, step) order with any number of workers, resume, one-line worker errors."""

import json

import pytest
import torch

from mirokit.data import DataError, EpochShuffle, JsonlImageDataset, LoaderConfig, StepBatchSampler, ToyShapesDataset
from mirokit.data.loader import batches, build_loader

KEYS = ["brightness", "size"]


def _batches(dataset, workers, start=0, rows=(0, 8), steps=5):
    sampler = StepBatchSampler(EpochShuffle(len(dataset), 3), global_batch=8, rows=rows, start_step=start,
                               end_step=steps)
    return list(batches(build_loader(dataset, sampler, KEYS, LoaderConfig(num_workers=workers), torch.device("cpu"))))


def test_sampler_is_the_shuffle_stream_sliced_per_rank():
    order = EpochShuffle(20, 3)
    rank1 = StepBatchSampler(order, global_batch=8, rows=(4, 8), start_step=2, end_step=5)
    assert len(rank1) == 3
    assert [[i for _, i in b] for b in rank1] == [order.indices(s * 8 + 4, 4) for s in range(2, 5)]
    assert [p for p, _ in next(iter(rank1))] == [20, 21, 22, 23]  # stream positions of step 2, rows 4-8
    with pytest.raises(ValueError, match="not inside a global batch"):
        StepBatchSampler(order, global_batch=8, rows=(4, 9), start_step=0, end_step=1)


def test_workers_and_resume_give_the_same_batches():
    data = ToyShapesDataset(40, image_size=16, seed=1)
    plain = _batches(data, workers=0)
    workers = _batches(data, workers=2)
    resumed = _batches(data, workers=2, start=3)
    assert len(plain) == len(workers) == 5 and len(resumed) == 2
    for a, b in zip(plain, workers):
        assert torch.equal(a.images, b.images) and a.captions == b.captions and torch.equal(a.rewards, b.rewards)
    for a, b in zip(plain[3:], resumed):
        assert torch.equal(a.images, b.images) and a.captions == b.captions
    halves = [_batches(data, workers=0, rows=r) for r in ((0, 4), (4, 8))]
    for step, whole in enumerate(plain):  # two ranks' rows make up the global batch
        assert halves[0][step].captions + halves[1][step].captions == whole.captions


def test_a_corrupt_image_in_a_worker_is_one_line_naming_the_file(tmp_path):
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "ok.png")
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    lines = [{"image": "ok.png", "caption": "a red square", "scores": {"brightness": 0.5}}] * 7
    lines.append({"image": "bad.png", "caption": "broken", "scores": {}})
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    data = JsonlImageDataset(tmp_path / "data.jsonl", image_size=8)
    with pytest.raises(DataError) as info:
        _batches(data, workers=1, steps=1)
    assert "bad.png" in str(info.value) and "\n" not in str(info.value) and "Caught" not in str(info.value)
