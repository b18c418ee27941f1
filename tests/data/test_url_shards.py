"""Shards where they live (issue 33): `mirokit score`, `encode` and training read tar shards from URLs (an HTTP
server on loopback in a thread, fsspec's memory://, pipe:CMD) exactly as from local files; a download cut midway
is retried, then counted in one line (the unit is not marked done, so the next run fetches it), never a traceback."""

import functools
import http.server
import io
import json
import logging
import tarfile
import threading
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import build_tiny_t5, build_tiny_vae
from PIL import Image

from mirokit import urls
from mirokit.cli.main import main
from mirokit.tars import iter_samples, shard_list

REWARDS = ["world_quality", "world_composition"]
CAPTIONS = ["a red circle", "a blue square", "a green triangle", "a big red square"]


# ---- a web server in a thread: /NAME serves the folder; /drop/NAME cuts every body in half, /flaky/NAME the first
# ---- one only, /late/NAME all but the first

class _Handler(http.server.SimpleHTTPRequestHandler):
    def translate_path(self, path):
        for mode in ("/drop/", "/flaky/", "/late/"):
            path = path.replace(mode, "/", 1) if path.startswith(mode) else path
        return super().translate_path(path)

    def do_GET(self):
        gets = self.server.gets
        gets[self.path] = gets.get(self.path, 0) + 1
        if (self.path.startswith("/drop/") or (self.path.startswith("/flaky/") and gets[self.path] == 1)
                or (self.path.startswith("/late/") and gets[self.path] > 1)):
            data = Path(self.translate_path(self.path)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))  # announces more than it sends
            self.end_headers()
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """(root folder served, base URL, server) of a ThreadingHTTPServer on 127.0.0.1, port 0."""
    root = tmp_path_factory.mktemp("www")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    server.gets = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_port}", server
    server.shutdown()
    server.server_close()


# ---- shards -----------------------------------------------------------------------------------------------

def _png(rng) -> bytes:
    arr = np.full((24, 24, 3), rng.integers(80, 170), np.uint8)
    x, y = rng.integers(6, 18, 2)
    arr[y - 4:y + 4, x - 4:x + 4] = rng.integers(0, 255, 3)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _add(tar, name, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def wds(web):
    """Two raw shards (12 samples each, one corrupt image) in the served folder."""
    root = web[0]
    rng = np.random.default_rng(0)
    for s in range(2):
        with tarfile.open(root / f"shard-{s:03d}.tar", "w") as tar:
            for i in range(s * 12, s * 12 + 12):
                _add(tar, f"{i:05d}.png", b"not an image" if i == 5 else _png(rng))
                _add(tar, f"{i:05d}.txt", CAPTIONS[i % 4].encode())
                _add(tar, f"{i:05d}.json", json.dumps({"key": i}).encode())
    return root


def _score(inputs, out, *extra) -> dict:
    args = ["score", *inputs, *sum([["--reward", r] for r in REWARDS], []), "--out", str(out), "--device", "cpu",
            "--batch-size", "8", *extra]
    assert main(args) == 0
    return json.loads((out / "manifest.000-of-001.json").read_text())


def _tables(out: Path) -> dict:
    return {f.name: pq.read_table(f).to_pydict() for f in sorted(out.glob("*.parquet"))}


def _members(path: Path) -> dict:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def _same_rows(a: dict, b: dict):
    assert a.keys() == b.keys() and a
    for name in a:
        for column in a[name]:
            if column in REWARDS:
                np.testing.assert_array_equal(np.asarray(a[name][column], float), np.asarray(b[name][column], float))
            else:
                assert a[name][column] == b[name][column], (name, column)


# ---- score -----------------------------------------------------------------------------------------------

def test_score_over_http_equals_local(wds, web, tmp_path):
    _, base, _ = web
    local = _score([str(wds / "shard-{000..001}.tar")], tmp_path / "local", "--enrich", "--num-workers", "0")
    remote = _score([f"{base}/shard-{{000..001}}.tar"], tmp_path / "http", "--enrich", "--num-workers", "1")
    _same_rows(_tables(tmp_path / "http"), _tables(tmp_path / "local"))
    assert remote["units"] == local["units"] == ["shard-000", "shard-001"]
    assert remote["counts"] == local["counts"] == {"rows": 24, "scored": 23, "errors": 1}
    assert remote["failed_units"] == {}
    for name in ("shard-000.tar", "shard-001.tar"):  # enriched copies: the same members, byte for byte
        assert _members(tmp_path / "http" / "enriched" / name) == _members(tmp_path / "local" / "enriched" / name)
    # a second run finds every unit done and fetches nothing
    again = _score([f"{base}/shard-{{000..001}}.tar"], tmp_path / "http", "--num-workers", "0")
    assert again["skipped_done"] == 2
    # a folder URL: the .tar links of its index page, read by two workers
    listed = _score([f"{base}/"], tmp_path / "folder", "--num-workers", "2")
    assert listed["units"] == ["shard-000", "shard-001"]
    _same_rows(_tables(tmp_path / "folder"), _tables(tmp_path / "local"))


def test_memory_file_and_pipe_urls_equal_local(wds, tmp_path):
    import fsspec

    fsspec.filesystem("memory").pipe("/wds/shard-000.tar", (wds / "shard-000.tar").read_bytes())
    local = list(iter_samples(wds / "shard-000.tar"))
    assert len(local) == 12
    for url in ("memory://wds/shard-000.tar", (wds / "shard-000.tar").as_uri(), f"pipe:cat '{wds / 'shard-000.tar'}'"):
        assert list(iter_samples(url)) == local, url
    assert shard_list("memory://wds/") == ["memory:///wds/shard-000.tar"]  # fsspec's spelling of the same file
    _score([str(wds / "shard-000.tar")], tmp_path / "local", "--num-workers", "0")
    _score(["memory://wds/shard-000.tar"], tmp_path / "memory", "--num-workers", "0")
    _same_rows(_tables(tmp_path / "memory"), _tables(tmp_path / "local"))


def test_a_download_cut_midway_is_retried_then_counted_and_fetched_by_the_next_run(wds, web, tmp_path, monkeypatch,
                                                                                    caplog, capsys):
    _, base, server = web
    monkeypatch.setattr(urls, "BACKOFF_S", 0.0)
    _score([str(wds / "shard-{000..001}.tar")], tmp_path / "local", "--num-workers", "0")
    out = tmp_path / "http"
    cut = f"{base}/drop/shard-000.tar"
    with caplog.at_level(logging.WARNING):
        manifest = _score([cut, f"{base}/flaky/shard-001.tar"], out, "--num-workers", "0", "--enrich")
    assert server.gets["/drop/shard-000.tar"] == urls.RETRIES  # tried 3 times
    assert server.gets["/flaky/shard-001.tar"] == 3  # cut once, then read whole, and again for --enrich
    line = manifest["failed_units"]["shard-000"]
    assert line.startswith(f"download failed: {cut}: ") and line.endswith(f"({urls.RETRIES} tries)")
    assert "\n" not in line
    assert manifest["errors_by_kind"] == {"download failed": 1}
    assert manifest["counts"] == {"rows": 13, "scored": 12, "errors": 1}  # the failed shard is one row, one error
    logged = [r.getMessage() for r in caplog.records if "download failed" in r.getMessage()]
    assert logged == [line]  # one line naming the URL
    assert not (out / "shard-000.parquet").exists() and not (out / "enriched" / "shard-000.tar").exists()
    assert _tables(out)["shard-001.parquet"] == _tables(tmp_path / "local")["shard-001.parquet"]
    # the next run (the server mended) fetches only the failed shard; the outputs equal the local run's
    rerun = _score([f"{base}/shard-000.tar", f"{base}/flaky/shard-001.tar"], out, "--num-workers", "0", "--enrich")
    assert rerun["skipped_done"] == 1 and rerun["failed_units"] == {}
    _same_rows(_tables(out), _tables(tmp_path / "local"))
    # read whole once, then cut on every read of the --enrich copy: the unit is not done either
    late = _score([f"{base}/late/shard-001.tar"], tmp_path / "late", "--num-workers", "0", "--enrich")
    assert late["failed_units"]["shard-001"].startswith(f"download failed: {base}/late/shard-001.tar: ")
    assert server.gets["/late/shard-001.tar"] == 1 + urls.RETRIES and not list((tmp_path / "late").rglob("*.tar"))
    assert not (tmp_path / "late" / "shard-001.parquet").exists() and late["counts"]["errors"] == 1
    assert late["failed_units"]["shard-001"] in capsys.readouterr().err


def test_recaption_over_http_equals_local(wds, web, tmp_path):
    _, base, _ = web
    for inputs, out in (([str(wds / "shard-{000..001}.tar")], "local"), ([f"{base}/shard-{{000..001}}.tar"], "http")):
        assert main(["recaption", *inputs, "--captioner", "world_detector", "--write-shards", "--num-workers", "0",
                     "--out", str(tmp_path / out), "--device", "cpu"]) == 0
    assert _tables(tmp_path / "http") == _tables(tmp_path / "local")
    for name in ("shard-000.tar", "shard-001.tar"):
        assert _members(tmp_path / "http" / "shards" / name) == _members(tmp_path / "local" / "shards" / name)


def test_missing_urls_failing_commands_and_clashing_names_are_one_line(wds, web, tmp_path, monkeypatch, capsys):
    _, base, server = web
    monkeypatch.setattr(urls, "BACKOFF_S", 0.0)
    missing = list(iter_samples(f"{base}/nowhere.tar"))
    assert [k for k, _, _ in missing] == ["nowhere.tar#download"] and "HTTP 404" in missing[0][2]
    assert server.gets["/nowhere.tar"] == 1  # not found: not retried
    failing = list(iter_samples(f"pipe:head -c 3000 '{wds / 'shard-000.tar'}'; exit 3"))
    assert failing[-1][2].startswith("download failed: pipe:") and "exited with status 3" in failing[-1][2]
    assert main(["score", f"{base}/a/x.tar", f"{base}/b/x.tar", "--reward", "world_quality", "--out",
                 str(tmp_path / "o"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "same output name 'x'" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    # a protocol without its package (or unknown) is one line before anything runs
    import importlib.util

    for url, says in (("nosuch://host/x.tar", "Protocol not known: nosuch"),
                      ("s3://bucket/x.tar", "pip install s3fs"), (f"{base}/a/..", "must name a .tar file")):
        if url.startswith("s3") and importlib.util.find_spec("s3fs") is not None:
            continue
        assert main(["score", url, "--reward", "world_quality", "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert says in err and len(err.strip().splitlines()) == 1, err


# ---- encode and training ------------------------------------------------------------------------------------

def _scored_shard(path, start, n):
    """A tar as `mirokit score --enrich` writes it (one corrupt image)."""
    rng = np.random.default_rng(start)
    with tarfile.open(path, "w") as tar:
        for i in range(start, start + n):
            key = f"{i:05d}"
            _add(tar, f"{key}.png", b"garbage" if i == start + 3 else _png(rng))
            _add(tar, f"{key}.txt", CAPTIONS[i % 4].encode())
            _add(tar, f"{key}.json", json.dumps({"clip_score": 0.1 * (i % 7)}).encode())


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    build_tiny_vae(root / "vae")
    return {"vae": root / "vae", "t5": build_tiny_t5(root / "t5")}


def _encode(inputs, out, models) -> dict:
    assert main(["encode", *inputs, "--out", str(out), "--reward", "clip_score", "--vae", str(models["vae"]),
                 "--text-encoder", str(models["t5"]), "--max-length", "8", "--image-size", "16", "--batch-size", "4",
                 "--device", "cpu"]) == 0
    return json.loads((out / "manifest.000-of-001.json").read_text())


@pytest.fixture(scope="module")
def encoded(web, models, tmp_path_factory):
    """Scored shards served at /scored/, encoded locally into /enc/ (served too)."""
    root, base, _ = web
    (root / "scored").mkdir()
    _scored_shard(root / "scored" / "a.tar", 0, 10)
    _scored_shard(root / "scored" / "b.tar", 100, 8)
    _encode([str(root / "scored")], root / "enc", models)
    return root / "enc"


def test_encode_over_http_equals_local(encoded, web, models, tmp_path, monkeypatch):
    _, base, _ = web
    monkeypatch.setattr(urls, "BACKOFF_S", 0.0)
    manifest = _encode([f"{base}/scored/{{a,b}}.tar"], tmp_path / "enc", models)
    assert manifest["left_out"] == {"corrupt image": 2} and manifest["failed_units"] == {}
    for name in ("a.tar", "b.tar"):
        assert _members(tmp_path / "enc" / name) == _members(encoded / name)
    for name in ("encoding.json", "latent_stats.json"):
        assert json.loads((tmp_path / "enc" / name).read_text()) == json.loads((encoded / name).read_text())
    folder = _encode([f"{base}/scored/"], tmp_path / "enc2", models)  # a folder URL: its index page's .tar links
    assert folder["units"] == ["a.tar", "b.tar"]
    assert _members(tmp_path / "enc2" / "b.tar") == _members(encoded / "b.tar")
    # a shard cut midway: retried, counted, nothing written for it; the next run encodes it
    out = tmp_path / "enc3"
    cut = _encode([f"{base}/drop/scored/a.tar", f"{base}/scored/b.tar"], out, models)
    assert cut["failed_units"]["a.tar"].startswith(f"download failed: {base}/drop/scored/a.tar: ")
    assert cut["left_out"] == {"corrupt image": 1, "download failed": 1} and not (out / "a.tar").exists()
    assert _members(out / "b.tar") == _members(encoded / "b.tar")
    assert _encode([f"{base}/scored/a.tar", f"{base}/scored/b.tar"], out, models)["skipped_done"] == 1
    assert _members(out / "a.tar") == _members(encoded / "a.tar")
    stats = [json.loads((folder / "latent_stats.json").read_text()) for folder in (out, encoded)]
    assert stats[0] == stats[1]


def _train(run: Path, data: str, models, stats: Path) -> tuple[list[float], dict]:
    from safetensors.torch import load_file

    from mirokit.train.config import load_run_config
    from mirokit.train.loop import train
    from mirokit.train.metrics import read_metrics

    overrides = [
        f"out_dir={run}", "train.precision=fp32", "model.image_channels=4", "model.image_size=8",
        "model.reward_keys=[clip_score]",
        "model.backbone={kind: rin, patch_size: 2, data_dim: 32, latents_dim: 32, num_latents: 8, num_blocks: 1, "
        "num_processing_layers: 1, read_write_heads: 4, compute_heads: 4, hidden_multiple: 8}",
        "model.conditioning={num_registers: 2, mixer_layers: 1, mixer_heads: 4}", "model.logvar_channels=16",
        f"text_encoder={{kind: hf_t5, name_or_path: {models['t5']}, max_length: 8}}",
        f"image_space={{kind: vae, name_or_path: {models['vae']}, normalisation: stats, stats: {stats}}}",
        f"data={data}", "loader.num_workers=0", "train.batch_size=8", "train.steps=3", "train.log_every=1",
        "train.progress=false", "train.threads=1", "optim.warmup_steps=1", "optim.total_steps=3"]
    folder = train(load_run_config(None, overrides))
    return [r["loss"] for r in read_metrics(run)], load_file(str(folder / "model.safetensors"))


def test_training_on_http_shards_equals_local(encoded, web, models, tmp_path):
    from mirokit.data.shards import cache_folder

    _, base, _ = web
    stats = encoded / "latent_stats.json"
    local_loss, local_weights = _train(tmp_path / "local", f"{{kind: shards, path: {encoded}}}", models, stats)
    url, cache = f"{base}/enc/", tmp_path / "cache"
    loss, weights = _train(tmp_path / "http", f"{{kind: shards, path: '{url}', cache_dir: {cache}}}", models, stats)
    assert loss == local_loss and len(loss) == 3
    assert weights.keys() == local_weights.keys()
    assert all(torch.equal(weights[k], local_weights[k]) for k in weights)
    fetched = cache_folder(url, cache)
    assert {p.name for p in fetched.iterdir()} >= {"a.tar", "b.tar", "encoding.json", "uncond_text.safetensors",
                                                   "latent_stats.json"}


def test_url_shards_are_fetched_once_and_a_failed_fetch_is_one_line(encoded, web, tmp_path, monkeypatch):
    from mirokit.data import DataError
    from mirokit.data.shards import EncodedShards

    _, base, server = web
    monkeypatch.setattr(urls, "BACKOFF_S", 0.0)
    url, cache = f"{base}/enc/{{a,b}}.tar", tmp_path / "cache"
    first = EncodedShards(url, cache_dir=cache)
    gets = dict(server.gets)
    again = EncodedShards(url, cache_dir=cache)  # a complete download is never fetched again
    assert server.gets == gets and len(again) == len(first) == len(EncodedShards(encoded)) == 16
    assert torch.equal(again[7].image, EncodedShards(encoded)[7].image)
    with pytest.raises(DataError) as err:
        EncodedShards(f"{base}/drop/enc/{{a,b}}.tar", cache_dir=cache)
    message = str(err.value)
    assert message.startswith(f"download failed: {base}/drop/enc/a.tar: ") and "(3 tries)" in message
    assert "\n" not in message and not list(cache.rglob(".*tmp-*"))  # no partial file left
