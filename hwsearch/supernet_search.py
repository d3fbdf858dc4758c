"""What the supernet searches (LightNAS, SurgeNAS) share as search objects, so each module holds only its own
method: scikit-learn's conventions (the repr without the predictor, `fit` that validates, forgets the last
search's state and runs the engine, `search` returning the result), the warm-up and device checks, and the
engine's frame (join torchrun's process group, torch's CPU threads). No torch at import: the CLI builds its
parser from the search classes.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

from predictors.base import InvalidParameterError, Params


class SupernetSearch(Params):
    """Base of a search that trains a supernet. A subclass sets `engine` (the module whose `run_search(search,
    train_data, val_data)` runs it and leaves `result_` on the search), `warmup_share` (the share of the
    epochs α is frozen for by default) and has the parameters `epochs`, `warmup_epochs`, `device`, `threads`."""

    name: ClassVar[str]
    engine: ClassVar[str]
    warmup_share: ClassVar[float]

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.get_params().items() if k != "predictor"}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"

    def _warmup(self) -> int:
        """α is frozen for this many epochs: round(epochs · warmup_share) unless `warmup_epochs` says."""
        return round(self.epochs * self.warmup_share) if self.warmup_epochs is None else self.warmup_epochs

    def _check_schedule_and_device(self) -> None:
        """InvalidParameterError when no epoch would update α, or CUDA is asked for and torch has none."""
        if self._warmup() >= self.epochs:
            raise InvalidParameterError(f"warmup_epochs ({self._warmup()}) must be < epochs ({self.epochs}): "
                                        "no epoch would update α")
        if self.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise InvalidParameterError(f"device {self.device!r} asked for, but torch sees no CUDA device")

    def _validate(self) -> None:
        raise NotImplementedError

    def search(self, train_data: Any, val_data: Any = None) -> Any:
        """`fit` and return its result."""
        return self.fit(train_data, val_data).result_

    def fit(self, train_data: Any, val_data: Any = None) -> Any:
        """Validate, forget the last search's state, run the engine (torch: imported only now)."""
        self._validate()
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, key)
        importlib.import_module(self.engine).run_search(self, train_data, val_data)
        return self

    def _json_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.get_params().items() if k != "predictor"}


def run_on_ranks(search: Any, fit: Any, train_data: Any, val_data: Any) -> None:
    """`fit(search, train_data, val_data, ctx)` in torchrun's process group when there is one (joined and left
    here), on `search.threads` CPU threads (restored after) unless it runs on CUDA or threads is None."""
    from hwsearch.distributed import finish, init_distributed
    from predictors.maml import torch_threads

    ctx = init_distributed(search.device)
    try:
        if search.threads is not None and not search.device.startswith("cuda"):
            with torch_threads(search.threads):
                fit(search, train_data, val_data, ctx)
        else:
            fit(search, train_data, val_data, ctx)
    finally:
        finish(ctx)
