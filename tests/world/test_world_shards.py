import tarfile

import numpy as np
import pytest

from mirokit.world.dataset import WorldDataset
from mirokit.world.shards import iter_shards, read_shard, write_shards


def test_shards_round_trip(tmp_path):
    ds = WorldDataset(25)
    paths = write_shards(ds, tmp_path / "out", shard_size=10)
    assert [p.name for p in paths] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [p.name for p in paths]  # no temp files left
    with tarfile.open(paths[0]) as tar:
        assert tar.getnames()[:3] == ["00000000.png", "00000000.txt", "00000000.json"]
    samples = list(iter_shards(paths))
    assert [s[0] for s in samples] == [f"{i:08d}" for i in range(25)]
    expected = ds.pixels(range(25)).permute(0, 2, 3, 1).numpy()
    for i, (_key, image, caption, metadata) in enumerate(samples):
        assert image.size == (32, 32) and image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), expected[i])  # PNG is lossless
        assert caption == ds.captions[i] and metadata == ds.metadata(i)


def test_write_shards_from_an_iterable_and_errors(tmp_path):
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    paths = write_shards([("a", image, "x", {"k": 1}), ("b", image, "y", {})], tmp_path, shard_size=5)
    assert [(k, c, m) for k, _, c, m in read_shard(paths[0])] == [("a", "x", {"k": 1}), ("b", "y", {})]

    def broken():
        yield "c", image, "z", {}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_shards(broken(), tmp_path / "partial")
    assert list((tmp_path / "partial").iterdir()) == []  # the partial shard was removed
    with pytest.raises(ValueError, match="shard key"):
        write_shards([("bad.key", image, "x", {})], tmp_path / "k")
    with pytest.raises(ValueError, match="uint8"):
        write_shards([("a", image.astype(float), "x", {})], tmp_path / "f")
    with tarfile.open(tmp_path / "odd.tar", "w") as tar:
        tar.add(paths[0], arcname="z.png")
    with pytest.raises(ValueError, match="sample 'z' has no .txt"):
        list(read_shard(tmp_path / "odd.tar"))
