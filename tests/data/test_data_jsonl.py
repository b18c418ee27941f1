import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from mirokit.data import DataError, JsonlImageDataset, collate


def _stripes(path, width=12, height=8):
    """Left third red, middle third green, right third blue."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    third = width // 3
    array[:, :third, 0] = 255
    array[:, third : 2 * third, 1] = 255
    array[:, 2 * third :, 2] = 255
    Image.fromarray(array).save(path)


@pytest.fixture()
def folder(tmp_path):
    (tmp_path / "img").mkdir()
    _stripes(tmp_path / "img" / "a.png")
    Image.new("RGB", (8, 8), (255, 255, 255)).save(tmp_path / "img" / "b.png")
    Image.new("RGBA", (16, 16), (0, 0, 0, 0)).save(tmp_path / "img" / "clear.png")
    (tmp_path / "img" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    return tmp_path


def _write(path, lines):
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")


GOOD = [
    {"image": "img/a.png", "caption": "stripes", "scores": {"clip": 0.5, "aes": 1.0}},
    {"image": "img/b.png", "caption": "white", "scores": {"clip": None, "vqa": 0.0}},
    '{"image": "img/clear.png", "caption": "", "scores": {"aes": NaN}}',
]
BAD = [
    ('{"image": "img/a.png", "caption": ', "malformed JSON"),
    ({"image": "img/a.png", "scores": {}}, "missing caption"),
    ({"image": "img/a.png", "caption": 7}, "caption is not a string (int)"),
    ({"image": "img/nope.png", "caption": "x"}, "image file not found: "),
    ({"image": "img/a.png", "caption": "x", "scores": {"clip": "high"}}, "score 'clip' is not a number ('high')"),
    ({"image": "img/a.png", "caption": "x", "scores": {"clip": 1.2}}, "score 'clip'=1.2 outside [0, 1]"),
    ({"image": "img/a.png", "caption": "x", "scores": {"clip": True}}, "score 'clip' is not a number (True)"),
    ({"caption": "x"}, "missing image path"),
    ("[1, 2]", "not a JSON object (list)"),
]


def test_valid_lines_load_and_each_bad_line_is_reported(folder):
    path = folder / "captions.jsonl"
    lines = GOOD[:1] + [line for line, _ in BAD] + GOOD[1:] + [""]
    _write(path, lines)
    with pytest.warns(UserWarning, match=f"skipped {len(BAD)} of {len(BAD) + 3} lines"):
        data = JsonlImageDataset(path, image_size=8)
    assert len(data) == 3
    assert len(data.skipped) == len(BAD)
    for number, (reason, (_, expected)) in enumerate(zip(data.skipped, BAD), start=2):
        assert reason.startswith(f"captions.jsonl:{number}: "), reason
        assert expected in reason, reason
        assert "\n" not in reason
    assert data.reward_keys_seen == ["aes", "clip", "vqa"]
    batch = collate([data[i] for i in range(3)], ["clip", "aes"])
    assert batch.captions == ["stripes", "white", ""]
    assert batch.images.shape == (3, 3, 8, 8)
    assert batch.rewards[0].tolist() == [0.5, 1.0]
    assert math.isnan(batch.rewards[1, 0]) and math.isnan(batch.rewards[1, 1]) and math.isnan(batch.rewards[2, 1])


def test_pixels_are_resized_center_cropped_and_scaled(folder):
    _write(folder / "d.jsonl", GOOD)
    data = JsonlImageDataset(folder / "d.jsonl", image_size=8)
    stripes = data[0].image  # 12x8 -> crop columns 2..9: 2 red, 4 green, 2 blue
    assert stripes.dtype == torch.float32 and stripes.shape == (3, 8, 8)
    assert torch.equal(stripes[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    assert torch.equal(stripes[:, 0, 4], torch.tensor([-1.0, 1.0, -1.0]))
    assert torch.equal(stripes[:, 0, 7], torch.tensor([-1.0, -1.0, 1.0]))
    row = stripes[:, 3]  # (3, 8): channel c is +1 exactly where stripe c is
    assert [int((row[c] == 1).sum()) for c in range(3)] == [2, 4, 2]
    assert torch.equal(data[1][0], torch.ones(3, 8, 8))
    assert torch.equal(data[2][0], torch.ones(3, 8, 8))  # transparent -> white, 16 -> 8 px
    small = JsonlImageDataset(folder / "d.jsonl", image_size=4, channels=1)
    gray = small[1][0]
    assert gray.shape == (1, 4, 4) and torch.allclose(gray, torch.ones(1, 4, 4))
    upscaled = JsonlImageDataset(folder / "d.jsonl", image_size=20)[0][0]
    assert upscaled.shape == (3, 20, 20) and upscaled.min() >= -1 and upscaled.max() <= 1


def test_root_option_resolves_relative_paths(folder):
    meta = folder / "meta"
    meta.mkdir()
    _write(meta / "list.jsonl", [{"image": "b.png", "caption": "white"}])
    assert len(JsonlImageDataset(meta / "list.jsonl", image_size=8, root=folder / "img")) == 1
    with pytest.raises(DataError, match="image file not found"):
        JsonlImageDataset(meta / "list.jsonl", image_size=8)


def test_corrupt_image_is_named_at_read_time_or_skipped_when_verified(folder):
    _write(folder / "c.jsonl", [GOOD[0], {"image": "img/broken.png", "caption": "oops"}])
    data = JsonlImageDataset(folder / "c.jsonl", image_size=8)
    assert len(data) == 2 and data.skipped == []
    with pytest.raises(DataError, match=r"cannot read image .*broken\.png") as info:
        data[1]
    assert "\n" not in str(info.value)
    with pytest.warns(UserWarning, match="skipped 1 of 2"):
        verified = JsonlImageDataset(folder / "c.jsonl", image_size=8, verify_images=True)
    assert len(verified) == 1
    assert verified.skipped[0].startswith("c.jsonl:2: corrupt image") and "broken.png" in verified.skipped[0]


def test_all_bad_or_missing_file_raises(folder):
    _write(folder / "bad.jsonl", ["{oops", {"image": "img/a.png"}])
    with pytest.raises(DataError, match=r"every line is invalid; first: bad.jsonl:1: malformed JSON"):
        JsonlImageDataset(folder / "bad.jsonl", image_size=8)
    (folder / "empty.jsonl").write_text("\n\n")
    with pytest.raises(DataError, match="no records"):
        JsonlImageDataset(folder / "empty.jsonl", image_size=8)
    with pytest.raises(DataError, match="dataset file not found"):
        JsonlImageDataset(folder / "missing.jsonl", image_size=8)
    _write(folder / "ok.jsonl", GOOD)
    with pytest.raises(DataError, match="channels must be 1 or 3"):
        JsonlImageDataset(folder / "ok.jsonl", image_size=8, channels=4)


def test_other_captions_mix_in_with_their_own_scores(folder):
    """The on-the-fly source mixes captions like encoded shards: NAME_caption with NAME_scores (or every reward
    missing without them), or the record's scores with caption_rewards original."""
    lines = [{"image": "img/a.png", "caption": "stripes", "scores": {"clip": 0.5},
              "synthetic_caption": "red green blue stripes", "synthetic_scores": {"clip": 0.9}},
             {"image": "img/b.png", "caption": "white", "scores": {"clip": 0.25},
              "synthetic_caption": "a white square"}]
    _write(folder / "mix.jsonl", lines)
    always = JsonlImageDataset(folder / "mix.jsonl", image_size=8, caption_mix=1.0)
    first, second = always.draw(0, torch.Generator()), always.draw(1, torch.Generator())
    assert (first.caption, first.scores) == ("red green blue stripes", {"clip": 0.9})
    assert second.caption == "a white square" and math.isnan(second.scores["clip"])
    released = JsonlImageDataset(folder / "mix.jsonl", image_size=8, caption_mix=1.0, caption_rewards="original")
    assert released.draw(0, torch.Generator()).scores == {"clip": 0.5}
    assert always[0].caption == "stripes"  # without a generator: the original caption
    never = JsonlImageDataset(folder / "mix.jsonl", image_size=8, caption_weights={"original": 1})
    assert {never.draw(0, torch.Generator().manual_seed(s)).caption for s in range(20)} == {"stripes"}
    half = JsonlImageDataset(folder / "mix.jsonl", image_size=8, caption_mix=0.5)
    picks = [half.draw(0, torch.Generator().manual_seed(s)).caption != "stripes" for s in range(400)]
    assert abs(np.mean(picks) - 0.5) < 5 * (0.25 / 400) ** 0.5
    _write(folder / "bad.jsonl", [{**lines[0], "synthetic_scores": {"clip": 3.0}}, lines[1]])
    with pytest.warns(UserWarning, match="synthetic_scores: score 'clip'=3.0 outside"):
        JsonlImageDataset(folder / "bad.jsonl", image_size=8)
