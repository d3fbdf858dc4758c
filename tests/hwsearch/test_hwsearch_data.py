"""Search data: the digits proxy, the image folder reader and DistributedSampler-style sharding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hwsearch.data import ImageFolderDataset, batches, digits_proxy, shard_indices, split


def test_digits_proxy_splits_and_is_labelled_a_proxy():
    w, a = digits_proxy(16, seed=0)
    assert len(w) + len(a) == 1797 and len(w) == round(1797 * 0.8)
    assert w.images.shape[1:] == (3, 16, 16) and w.images.dtype == torch.float32
    assert w.proxy and a.proxy and "proxy" in w.name and "8x8 upsampled" in w.name
    assert w.num_classes == 10 and set(w.labels.tolist()) == set(range(10))
    both = torch.cat([w.images, a.images])
    assert abs(float(both.mean())) < 1e-4 and float(both.std()) == pytest.approx(1.0, abs=1e-3)
    w2, _ = digits_proxy(16, seed=0)
    w3, _ = digits_proxy(16, seed=1)
    assert torch.equal(w.labels, w2.labels) and not torch.equal(w.labels, w3.labels)


def _png(path, size, color):
    Image.new("RGB", size, color).save(path)


def test_image_folder_reads_classes(tmp_path):
    for name, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / name).mkdir()
        _png(tmp_path / name / "a.png", (40, 30), color)
        _png(tmp_path / name / "b.png", (20, 50), color)
    (tmp_path / "dog" / "notes.txt").write_text("ignored")
    data = ImageFolderDataset(tmp_path, resolution=16)
    assert data.classes == ["cat", "dog"] and len(data) == 4 and data.num_classes == 2
    x, y = data[0]
    assert x.shape == (3, 16, 16) and y == 0
    # pure red, normalised with ImageNet's statistics
    assert float(x[0].mean()) == pytest.approx((1 - 0.485) / 0.229, abs=1e-4)
    assert data[3][1] == 1
    w, a = split(data, 0.5, seed=0)
    assert len(w) == 2 and len(a) == 2 and "[w split]" in w.name
    xb, yb = next(iter(batches(w, [0, 1], 2)))
    assert xb.shape == (2, 3, 16, 16) and yb.dtype == torch.long


def test_image_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolderDataset(tmp_path / "missing", 16)
    with pytest.raises(ValueError, match=f"{tmp_path}.*no class subfolders"):
        ImageFolderDataset(tmp_path, 16)
    _png(tmp_path / "flat.png", (8, 8), (0, 0, 0))
    with pytest.raises(ValueError, match="no class subfolders"):
        ImageFolderDataset(tmp_path, 16)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ValueError, match="without images.*empty_class"):
        ImageFolderDataset(tmp_path, 16)


def test_shard_indices_like_distributed_sampler():
    n, world = 10, 3
    shards = [shard_indices(n, r, world, seed=0, epoch=1) for r in range(world)]
    assert [len(s) for s in shards] == [4, 4, 4]
    assert set(np.concatenate(shards).tolist()) == set(range(n))
    assert shard_indices(n, 0, 1, seed=0, epoch=1) != shard_indices(n, 0, 1, seed=0, epoch=2)
    assert shard_indices(n, 0, 1, seed=0, epoch=0, shuffle=False) == list(range(n))
    with pytest.raises(ValueError, match="rank"):
        shard_indices(n, 3, 3, seed=0, epoch=0)
