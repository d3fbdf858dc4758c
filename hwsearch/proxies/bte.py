"""BTE (batch training efficiency, thesis Definition 4.1) as a proxy: a few-epoch training proxy, not zero-shot.

The batch is the training set: it is split into fixed mini-batches of `batch_size` images (in its order, the
last incomplete one dropped), a copy of the network is trained `epochs` epochs on them with no shuffling
(hwsearch.bte.loss_log: SGD, momentum 0.9, constant lr), and the score is BTE of the loss log (higher is
better; -inf when the training diverged). Deterministic under `seed` and the network's init. The proxy
trains even when called under torch.no_grad or on a model in eval mode (loss_log turns both on for its copy),
and leaves the model it is given untouched. Give it a larger batch than the one-batch proxies read (e.g.
`make_batch("digits", shape, 256)`): the default 64 images make 4 mini-batches of 16.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hwsearch.bte import (
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    DEFAULT_MOMENTUM,
    DEFAULT_NEGATIVE,
    DEFAULT_WEIGHT_DECAY,
    NEGATIVE_RULES,
    bte,
    loss_log,
)
from hwsearch.proxies import register_proxy
from hwsearch.proxies.base import Proxy
from spaces.errors import UserInputError

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from hwsearch.proxies.base import ProxyBatch


class TrainingProxy(Proxy):
    """A proxy that trains a copy of the network on the batch (split in mini-batches) and scores its loss log."""

    needs_labels = True
    trains = True
    min_epochs = 1

    def __init__(self, epochs: int = DEFAULT_EPOCHS, batch_size: int = 16, lr: float = DEFAULT_LR,
                 momentum: float = DEFAULT_MOMENTUM, weight_decay: float = DEFAULT_WEIGHT_DECAY, seed: int = 0,
                 reevaluate: bool = False) -> None:
        for name, v, least in (("epochs", epochs, self.min_epochs), ("batch_size", batch_size, 1),
                               ("seed", seed, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < least:
                raise UserInputError(f"{self.name}: {name} must be an int >= {least}, got {v!r}")
        for name, v in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (name == "lr" and v == 0):
                raise UserInputError(f"{self.name}: {name} must be a number {'> 0' if name == 'lr' else '>= 0'}, "
                                     f"got {v!r}")
        if not isinstance(reevaluate, bool):
            raise UserInputError(f"{self.name}: reevaluate must be a bool, got {reevaluate!r}")
        self.epochs, self.batch_size, self.lr = epochs, batch_size, float(lr)
        self.momentum, self.weight_decay, self.seed = float(momentum), float(weight_decay), seed
        self.reevaluate = reevaluate

    def losses(self, model: nn.Module, batch: ProxyBatch | None) -> np.ndarray:
        """The loss log [epochs, N] of a copy of `model` trained on `batch` (mini-batches of
        min(batch_size, batch size))."""
        if batch is None:
            raise ValueError(f"{self.name} trains on a batch of images and labels; got none")
        return loss_log(model, batch.x, batch.y, epochs=self.epochs, batch_size=min(self.batch_size, batch.size),
                        lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay, seed=self.seed,
                        reevaluate=self.reevaluate)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["trains"] = True
        out["training"] = ("a copy of the network, SGD with a constant lr on the batch's fixed mini-batches "
                         "(no shuffle, no augmentation)")
        return out


@register_proxy("bte")
class BTE(TrainingProxy):
    """Σ_n Π_e (L_e(n) - L_{e+1}(n)) / L_e(n) over the batch's mini-batches after `epochs` (>= 2) epochs."""

    min_epochs = 2
    summary = "BTE: batch training efficiency of a few epochs on the batch's fixed mini-batches (trains)"

    def __init__(self, epochs: int = DEFAULT_EPOCHS, batch_size: int = 16, lr: float = DEFAULT_LR,
                 momentum: float = DEFAULT_MOMENTUM, weight_decay: float = DEFAULT_WEIGHT_DECAY, seed: int = 0,
                 reevaluate: bool = False, negative: str = DEFAULT_NEGATIVE) -> None:
        super().__init__(epochs, batch_size, lr, momentum, weight_decay, seed, reevaluate)
        if negative not in NEGATIVE_RULES:
            raise UserInputError(f"bte: negative must be one of {', '.join(NEGATIVE_RULES)}, got {negative!r}")
        self.negative = negative

    def score(self, model: nn.Module, batch: ProxyBatch | None) -> float:
        return bte(self.losses(model, batch), self.negative)
