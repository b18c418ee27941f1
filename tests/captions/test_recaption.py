"""`mirokit recaption` on a tiny random LLaVA of the real transformers classes (loaded back through the Auto
classes) and on the shapes world's detector captioner: deterministic greedy captions, the same captions in a batch
as alone, bad input counted, a killed run resumed without duplicates, captions written into the shards."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from vlm_kit import save_tiny_llama, save_tiny_llava

from mirokit.cli.main import main


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    return save_tiny_llava(tmp_path_factory.mktemp("llava") / "tiny-llava")


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (36, 44, 3), dtype=np.uint8)) for _ in range(n)]


def _shard(path: Path, start: int, n: int, *, corrupt=(), uncaptioned=()):
    with tarfile.open(path, "w") as tar:
        for i, image in enumerate(_images(n, start), start=start):
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            parts = {"png": b"not a png" if i in corrupt else buf.getvalue(), "json": b"{}"}
            if i not in uncaptioned:
                parts["txt"] = f"a photo of a red circle {i}".encode()
            for ext, data in parts.items():
                info = tarfile.TarInfo(f"{i:05d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def test_greedy_captions_are_deterministic_and_batch_independent(llava):
    from mirokit.captions import build_captioner

    captioner = build_captioner("vlm", model=str(llava), max_new_tokens=8)
    images = _images(3)
    hints = ["a red circle", None, "two stars"]
    batch = captioner.caption(images, hints)
    assert batch == captioner.caption(images, hints)  # greedy: the same every time
    assert [captioner.caption([im], [h])[0] for im, h in zip(images, hints)] == batch  # left padding: as alone
    assert all(isinstance(c, str) and c for c in batch)
    described = captioner.describe()
    assert described["class"] == "LlavaForConditionalGeneration" and described["max_new_tokens"] == 8
    with pytest.raises(FileNotFoundError, match="weights not found: ./no_such_model_folder"):
        build_captioner("vlm", model="./no_such_model_folder")  # a path (mirokit.sources): not tried on the hub
    with pytest.raises(ValueError, match="unknown captioner"):
        build_captioner("nope")


def test_recaption_job_counts_bad_input_and_writes_the_shards(llava, tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    _shard(raw / "a.tar", 0, 6, corrupt={2}, uncaptioned={4})
    _shard(raw / "b.tar", 100, 5)
    out = tmp_path / "captions"
    args = ["recaption", str(raw), "--model", str(llava), "--max-new-tokens", "5", "--short", "--write-shards",
            "--batch-size", "4", "--num-workers", "0", "--out", str(out)]
    assert main(args) == 0
    assert "captioned 10 of 11 samples in 2 unit(s); 1 errors" in capsys.readouterr().out
    table = pq.read_table(out / "a.parquet").to_pylist()
    assert [r["key"] for r in table] == [f"{i:05d}" for i in range(6)]
    bad = table[2]
    assert bad["caption"] is None and bad["error"].startswith("corrupt image")
    assert table[4]["caption"] and table[4]["caption_source"] == "" and table[4]["error"] == ""  # no alt-text: fine
    assert all(r["short_caption"] for r in table if not r["error"])
    manifest = json.loads((out / "manifest.000-of-001.json").read_text())
    assert manifest["captioner"]["model"] == str(llava) and manifest["errors_by_kind"] == {"corrupt image": 1}
    with tarfile.open(out / "shards" / "a.tar") as tar:
        members = {m.name: tar.extractfile(m).read().decode() for m in tar if m.name.endswith(".txt")}
    assert members["00000.synthetic.txt"] == table[0]["caption"]
    assert members["00000.synthetic_short.txt"] == table[0]["short_caption"]
    assert "00002.synthetic.txt" not in members and "00000.txt" in members  # the original caption is kept
    # the written shards score both captions unchanged
    assert main(["score", str(out / "shards"), "--reward", "world_quality", "--caption", "synthetic",
                 "--num-workers", "0", "--out", str(tmp_path / "scores")]) == 0
    scores = pq.read_table(tmp_path / "scores" / "b.parquet").to_pylist()
    assert all(np.isfinite(r["synthetic_world_quality"]) for r in scores)


def test_a_text_model_shortens_the_long_captions(llava, tmp_path):
    from mirokit.captions.shorten import TextShortener

    llama = save_tiny_llama(tmp_path / "tiny-llama")
    shortener = TextShortener(str(llama), max_new_tokens=6)
    longs = ["a photo of a red circle and two blue stars", "the image is a green square", "one star"]
    short = shortener.shorten(longs)
    assert short == shortener.shorten(longs)  # greedy: the same every time
    assert [shortener.shorten([c])[0] for c in longs] == short  # left padding: as alone
    assert shortener._prompt("a star").startswith("USER: Shorten this image caption")  # its chat template
    with pytest.raises(FileNotFoundError, match="shortening model weights not found: ~/nowhere"):
        TextShortener("~/nowhere")
    with pytest.raises(ValueError, match="must contain"):
        TextShortener(str(llama), instruction="shorten it")
    # in the job: the short captions are the text model's shortening of the VLM's long ones
    raw = tmp_path / "raw"
    raw.mkdir()
    _shard(raw / "a.tar", 0, 3)
    out = tmp_path / "out"
    assert main(["recaption", str(raw), "--model", str(llava), "--max-new-tokens", "5", "--shorten-model", str(llama),
                 "--shorten-max-new-tokens", "6", "--write-shards", "--num-workers", "0", "--out", str(out)]) == 0
    table = pq.read_table(out / "a.parquet").to_pylist()
    assert [r["short_caption"] for r in table] == shortener.shorten([r["caption"] for r in table])
    manifest = json.loads((out / "manifest.000-of-001.json").read_text())
    assert manifest["shortener"]["class"] == "LlamaForCausalLM" and manifest["shortener"]["model"] == str(llama)
    with tarfile.open(out / "shards" / "a.tar") as tar:
        assert "00001.synthetic_short.txt" in tar.getnames()


def test_a_killed_run_resumes_without_duplicates(llava, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for s in range(3):
        _shard(raw / f"{s}.tar", 10 * s, 4)
    args = ["recaption", str(raw), "--model", str(llava), "--max-new-tokens", "4", "--num-workers", "0"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    # a run killed during its second unit: the first unit is done, the second half-written
    part = tmp_path / "part"
    assert main([*args, "--out", str(part), "--num-shards", "3", "--shard-index", "0"]) == 0
    (part / ".1.parquet.999.tmp").write_bytes(b"half a file")
    assert main([*args, "--out", str(part)]) == 0
    manifest = json.loads((part / "manifest.000-of-001.json").read_text())
    assert manifest["skipped_done"] == 1 and not list(part.glob(".*tmp*"))
    for s in range(3):
        whole = pq.read_table(tmp_path / "whole" / f"{s}.parquet").to_pylist()
        assert pq.read_table(part / f"{s}.parquet").to_pylist() == whole
        assert len({r["key"] for r in whole}) == len(whole) == 4


def test_the_world_captioner_describes_pixels():
    from mirokit.captions import build_captioner
    from mirokit.world.render import render_batch
    from mirokit.world.scenes import Scene, WorldObject

    scene = Scene((WorldObject("circle", "red", 0.3, 0.3, 0.12), WorldObject("square", "blue", 0.7, 0.7, 0.12)))
    image = Image.fromarray(render_batch([scene], 32)[0])
    captioner = build_captioner("world_detector")  # the world's: registered by its plugin, nothing downloaded
    (long,), (short,) = captioner.caption([image], [None]), captioner.caption([image], [None], short=True)
    assert "red circle" in long and "blue square" in long
    assert short == "a circle and a square"
    assert captioner.caption([Image.new("RGB", (32, 32), (128, 128, 128))], [None]) == ["an empty grey background"]


def test_each_reward_scores_the_caption_form_it_reads(tmp_path):
    """world_alignment on the short synthetic caption (as asked), world_quality once per image (it reads none)."""
    from mirokit.rewards.job import ScoreJobConfig, run_score_job
    from mirokit.rewards.registry import build_scorer
    from mirokit.world.render import render_batch
    from mirokit.world.scenes import Scene, WorldObject

    scenes = [Scene((WorldObject("circle", "red", 0.3, 0.3, 0.12), WorldObject("square", "blue", 0.7, 0.7, 0.12))),
              Scene((WorldObject("star", "green", 0.5, 0.5, 0.2),))]
    texts = [("a red circle", "a red circle and a blue square", "a star"), ("a star", "a green star", "a circle")]
    shard = tmp_path / "s.tar"
    with tarfile.open(shard, "w") as tar:
        for i, (pixels, (txt, long, short)) in enumerate(zip(render_batch(scenes, 32), texts)):
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, format="PNG")
            for ext, data in (("png", buf.getvalue()), ("txt", txt.encode()), ("synthetic.txt", long.encode()),
                              ("synthetic_short.txt", short.encode())):
                info = tarfile.TarInfo(f"{i:03d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    cfg = ScoreJobConfig(inputs=[str(shard)], out_dir=str(tmp_path / "scores"), num_workers=0, progress=False,
                         rewards=["world_alignment", "world_quality"], captions=["synthetic"],
                         caption_length={"world_alignment": "short"})
    manifest = run_score_job(cfg)
    assert manifest["caption_length"] == {"world_alignment": "short", "world_quality": "image"}
    rows = pq.read_table(tmp_path / "scores" / "s.parquet").to_pylist()
    images = [Image.fromarray(p) for p in render_batch(scenes, 32)]
    alignment = build_scorer("world_alignment")
    np.testing.assert_allclose([r["synthetic_world_alignment"] for r in rows],
                               alignment.score(images, [t[2] for t in texts]), rtol=1e-6)
    assert [r["synthetic_world_quality"] for r in rows] == [r["world_quality"] for r in rows]
    with pytest.raises(ValueError, match="use long, short or image"):
        run_score_job(ScoreJobConfig(inputs=[str(shard)], out_dir=str(tmp_path / "x"), rewards=["world_quality"],
                                     caption_length={"world_quality": "medium"}))
