"""The training proxies (BTE, TSE) in the registry: they train a copy on the batch's fixed mini-batches, score
our spaces' networks, repeat under the seed, agree with hwsearch.bte on the same loss log, and survive a
caller's no_grad."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hwsearch.bte import bte, loss_log, tse
from hwsearch.proxies import build_for_proxy, create_proxy, list_proxies, make_batch, proxy_class, score_arch
from spaces.errors import UserInputError


def test_registered_as_training_proxies():
    assert {"bte", "tse"} <= set(list_proxies())
    assert proxy_class("bte").trains and proxy_class("tse").trains and not proxy_class("synflow").trains
    assert proxy_class("bte").higher_is_better and not proxy_class("tse").higher_is_better
    assert proxy_class("bte").needs_labels and not proxy_class("bte").data_free
    assert create_proxy("bte").describe()["trains"] is True


@pytest.mark.parametrize("space_name", ["nb_small", "mb_small"])
def test_score_a_cell_and_an_mbconv_network_like_the_loss_log(space_name, request):
    space = request.getfixturevalue(space_name)
    arch = space.sample_unique(1, np.random.default_rng(0))[0]
    batch = make_batch("digits", space.input_shape(), 8, seed=0, num_classes=space.num_classes)
    kw = {"epochs": 2, "batch_size": 4}
    b = score_arch(create_proxy("bte", **kw), space, arch, batch, seed=3)
    t = score_arch(create_proxy("tse", **kw), space, arch, batch, seed=3)
    assert math.isfinite(b) and t > 0
    # an independent training of the same build gives the same log: deterministic under the seed
    log = loss_log(build_for_proxy(space, arch, 3), batch.x, batch.y, epochs=2, batch_size=4)
    assert log.shape == (2, 2)
    assert b == bte(log) and t == tse(log)


def test_trains_under_a_callers_no_grad_and_leaves_the_model(nb_small):
    arch = nb_small.sample_unique(1, np.random.default_rng(1))[0]
    model = build_for_proxy(nb_small, arch, 0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = make_batch("digits", nb_small.input_shape(), 16, seed=0, num_classes=nb_small.num_classes)
    proxy = create_proxy("tse", epochs=1, batch_size=8)
    with torch.no_grad():
        value = proxy.score(model.eval(), batch)
    assert value == pytest.approx(proxy.score(model, batch))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(("name", "kwargs", "words"), [
    ("bte", {"epochs": 1}, "epochs must be an int >= 2"),
    ("bte", {"negative": "abs"}, "negative must be one of"),
    ("tse", {"batch_size": 0}, "batch_size"),
    ("tse", {"lr": 0}, "lr"),
])
def test_bad_parameters_are_user_errors(name, kwargs, words):
    with pytest.raises(UserInputError, match=words):
        create_proxy(name, **kwargs)
