"""Search data without torchvision: a labelled proxy (scikit-learn digits) and a class-per-folder image set.

A search needs two splits, one for the weights w and one for the architecture α (FBNet: 80/20 of the
training images). A dataset here is anything with `__len__`, `__getitem__(i) -> (image [3, H, W], label)`,
`num_classes` and a `name`; `TensorData` also exposes its tensors so batches are one index operation.
`shard_indices` is DistributedSampler's rule (same shuffled order on every rank, padded to equal length,
rank r takes every world-th index), so every rank runs the same number of steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from spaces.errors import UserInputError

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Dataset(Protocol):
    name: str
    num_classes: int

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]: ...


@dataclass
class TensorData:
    """Images [N, C, H, W] float32 and labels [N] int64 held in memory."""

    images: torch.Tensor
    labels: torch.Tensor
    name: str
    num_classes: int
    proxy: bool = False

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    def subset(self, index: torch.Tensor | np.ndarray, name: str) -> TensorData:
        index = torch.as_tensor(index, dtype=torch.long)
        return TensorData(self.images[index], self.labels[index], name, self.num_classes, self.proxy)


def digits_proxy(resolution: int, channels: int = 3, seed: int = 0,
                 w_fraction: float = 0.8, n: int | None = None) -> tuple[TensorData, TensorData]:
    """(w-split, α-split) of scikit-learn's 1,797 8x8 digits, upsampled to `resolution`, 10 classes.

    A stand-in for ImageNet-100 that needs no download, so that a search runs anywhere in seconds; it is
    always named as a proxy, because accuracy trends on 8x8 digits say little about real images. Images
    are bilinearly resized, replicated to `channels`, standardised to zero mean and unit variance, and
    split with a generator seeded by `seed` (`w_fraction` for w, the rest for α). `n` keeps the first n
    digits only (a smoke run's size).
    """
    from sklearn.datasets import load_digits

    if not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"digits_proxy: resolution must be a positive int, got {resolution!r}")
    if not 0 < w_fraction < 1:
        raise ValueError(f"digits_proxy: w_fraction must be in (0, 1), got {w_fraction!r}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 2):
        raise ValueError(f"digits_proxy: n must be an int >= 2 (or None for all 1,797), got {n!r}")
    digits = load_digits()
    images, labels = digits.images[:n], digits.target[:n]
    x = torch.from_numpy(images.astype(np.float32) / 16.0).unsqueeze(1)  # [N, 1, 8, 8] in [0, 1]
    x = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear",
                                        align_corners=False)
    x = ((x - x.mean()) / x.std()).expand(-1, channels, -1, -1).contiguous()
    y = torch.from_numpy(labels.astype(np.int64))
    name = f"digits-proxy (sklearn digits, 8x8 upsampled to {resolution}x{resolution})"
    if n is not None:
        name += f", first {len(y)}"
    full = TensorData(x, y, name, 10, proxy=True)
    return split(full, w_fraction, seed)


def split(data: Any, w_fraction: float = 0.8, seed: int = 0) -> tuple[Any, Any]:
    """A seeded (w-split, α-split) of any dataset: TensorData subsets, or index views of others."""
    n = len(data)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    cut = round(n * w_fraction)
    if not 0 < cut < n:
        raise ValueError(f"split: {n} items cannot be split {w_fraction:.0%}/{1 - w_fraction:.0%} into two "
                         "non-empty parts")
    name = getattr(data, "name", type(data).__name__)
    if isinstance(data, TensorData):
        return data.subset(perm[:cut], f"{name} [w split]"), data.subset(perm[cut:], f"{name} [alpha split]")
    return (IndexView(data, perm[:cut].tolist(), f"{name} [w split]"),
            IndexView(data, perm[cut:].tolist(), f"{name} [alpha split]"))


class IndexView:
    """The items of `base` at `index` (a split of a dataset that is not held in memory)."""

    def __init__(self, base: Any, index: list[int], name: str) -> None:
        self.base, self.index, self.name = base, index, name
        self.num_classes = base.num_classes
        self.proxy = bool(getattr(base, "proxy", False))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.base[self.index[i]]


class ImageFolderDataset:
    """Images in `root/<class>/<file>` (classes sorted by folder name), loaded with PIL on access.

    Each image is converted to RGB, resized so its shorter side is resolution/crop_ratio (the ImageNet
    256 -> 224 convention), centre-cropped to resolution x resolution and normalised with ImageNet's mean
    and std. Files with other suffixes are ignored; a folder without class subfolders or images is refused
    with a message naming it.
    """

    def __init__(self, root: str | Path, resolution: int, crop_ratio: float = 0.875) -> None:
        self.root = Path(root)
        if not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"ImageFolderDataset: resolution must be a positive int, got {resolution!r}")
        if not 0 < crop_ratio <= 1:
            raise ValueError(f"ImageFolderDataset: crop_ratio must be in (0, 1], got {crop_ratio!r}")
        self.resolution, self.crop_ratio = resolution, crop_ratio
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist or is not a folder")
        folders = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not folders:
            raise UserInputError(f"image folder {self.root} has no class subfolders; expected "
                             f"{self.root}/<class name>/<image files>")
        self.classes = [p.name for p in folders]
        self.samples: list[tuple[Path, int]] = []
        empty = []
        for label, folder in enumerate(folders):
            files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                empty.append(folder.name)
            self.samples += [(p, label) for p in files]
        if empty:
            raise UserInputError(f"image folder {self.root}: class folder(s) without images "
                             f"({', '.join(IMAGE_SUFFIXES)}): {', '.join(empty)}")
        self.num_classes = len(self.classes)
        self.name = f"image-folder {self.root} ({len(self.samples)} images, {self.num_classes} classes)"
        self.proxy = False

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.samples[i]
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            short = max(self.resolution, round(self.resolution / self.crop_ratio))
            scale = short / min(w, h)
            size = (max(short, round(w * scale)), max(short, round(h * scale)))
            img = img.resize(size, Image.Resampling.BILINEAR)
            left, top = (size[0] - self.resolution) // 2, (size[1] - self.resolution) // 2
            img = img.crop((left, top, left + self.resolution, top + self.resolution))
            x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        return (x - mean) / std, label


def shard_indices(n: int, rank: int, world: int, seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    """This rank's indices for one epoch, as torch's DistributedSampler would give them (pure).

    Every rank draws the same permutation (seed + epoch), pads it by wrapping to a multiple of `world`,
    and keeps positions rank, rank + world, ...: equal counts on all ranks, so collectives never wait
    on a rank that has run out of batches.
    """
    if not 0 <= rank < world:
        raise ValueError(f"shard_indices: need 0 <= rank < world, got rank={rank}, world={world}")
    if n < 1:
        raise ValueError("shard_indices: empty dataset")
    order = (torch.randperm(n, generator=torch.Generator().manual_seed(int(seed) + int(epoch))).tolist()
             if shuffle else list(range(n)))
    total = -(-n // world) * world
    order += (order * (total // n + 1))[: total - n]
    return order[rank:total:world]


def batches(data: Any, indices: list[int], batch_size: int) -> Any:
    """(images, labels) batches over `indices`; one gather for TensorData, item by item otherwise."""
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        if isinstance(data, TensorData):
            index = torch.as_tensor(chunk, dtype=torch.long)
            yield data.images[index], data.labels[index]
        else:
            items = [data[i] for i in chunk]
            yield torch.stack([x for x, _ in items]), torch.as_tensor([y for _, y in items], dtype=torch.long)
