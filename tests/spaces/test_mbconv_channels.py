"""mbconv-channels (LightNet++'s channel stage): per-layer scales of the MBConv hidden width over a LightNAS base."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from spaces import InvalidArchError, UserInputError, create_space
from spaces.mbconv import _MB_SPECS, SKIP, MBConv, scale_channels
from spaces.mbconv_channels import ONE, SCALE_TOKENS, SCALES, MBConvChannelSpace, channel_space_for

TINY = {"width_mult": 0.25, "resolution": 32, "num_classes": 10}
# skips: layer 0 (shape-changing: a 1x1 conv), layers 5 and 20 (identity); the rest mixes every MBConv op
BASE_OPS = ["skip", "k3e3", "k5e6", "k7e3", "k3e6", "skip", "k7e6", "k5e3", "k3e3", "k3e6", "k5e3",
            "k5e6", "k7e3", "k7e6", "k3e3", "k3e6", "k5e3", "k5e6", "k7e3", "k7e6", "skip"]
BASE_ID = "-".join(BASE_OPS)
SKIPS = (0, 5, 20)


def result_dict(arch_id: str = BASE_ID, space: str = "mbconv-small", config: dict | None = None) -> dict:
    """The fields of a LightNAS result (hwsearch.result.LightNASResult) the channel space reads."""
    return {"search": "lightnas", "arch_id": arch_id, "space": space,
            "space_config": {**TINY, "stage_repeats": [4, 4, 4, 4, 4, 1]} if config is None else config}


@pytest.fixture(scope="module")
def space() -> MBConvChannelSpace:
    sp = create_space("mbconv-channels", base=BASE_ID, **TINY)
    assert isinstance(sp, MBConvChannelSpace)
    return sp


def test_shape_and_config_round_trip(space: MBConvChannelSpace, tmp_path: Path) -> None:
    assert space.live_layers == tuple(i for i in range(21) if i not in SKIPS) and space.n_layers == 18
    assert space.ops == SCALE_TOKENS and SCALES[ONE] == 1.0 and space.size == 7**18
    assert space.base_arch == space.base_space.parse(BASE_ID) and space.base_space.name == "mbconv-small"
    config = space.config
    assert config == {"base": BASE_ID, "base_space": "mbconv-small", **TINY, "width_mult": 0.25,
                      "stage_repeats": [4, 4, 4, 4, 4, 1]}
    assert json.loads(json.dumps(config)) == config
    assert create_space("mbconv-channels", **config).config == config
    assert space.input_shape(2) == (2, 3, 32, 32)
    # a LightNAS result, as a file or a dict, gives the same canonical config (the arch id, not the path)
    path = tmp_path / "found.json"
    path.write_text(json.dumps(result_dict()))
    assert create_space("mbconv-channels", base=str(path)).config == config
    assert channel_space_for(path).config == channel_space_for(result_dict()).config == config
    assert channel_space_for(str(path)).config == config
    # the result's space decides the base space; an explicit key that agrees is accepted
    assert create_space("mbconv-channels", base=str(path), resolution=32).config == config
    paper = channel_space_for(result_dict(space="mbconv", config={}))
    assert paper.config["base_space"] == "mbconv" and paper.config["width_mult"] == 1.0


def test_ids_round_trip(space: MBConvChannelSpace) -> None:
    assert SCALE_TOKENS == ("x0.5", "x0.75", "x1", "x1.25", "x1.5", "x1.75", "x2")
    archs = space.sample_unique(40, np.random.default_rng(0))
    assert len(set(archs)) == 40 and archs == space.sample_unique(40, np.random.default_rng(0))
    for arch in archs:
        assert space.parse(space.arch_id(arch)) == arch
    assert space.arch_id((ONE,) * 18) == "-".join(["x1"] * 18)
    assert space.scales((0,) * 17 + (6,)) == (0.5,) * 17 + (2.0,)
    for bad, message in [("-".join(["x1"] * 17), "needs 18"), ("-".join(["x1"] * 17 + ["x3"]), "unknown op 'x3'"),
                         ("-".join(["x1"] * 19), "needs 18")]:
        with pytest.raises(InvalidArchError, match=message):
            space.parse(bad)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"base": BASE_ID.replace("k7e6", "k9e6", 1)}, "bad base .*unknown op 'k9e6' at layer 6"),
    ({"base": "-".join(BASE_OPS[:20])}, "bad base .*needs 21"),
    ({"base": BASE_ID, "base_space": "nb201"}, "base_space must be an mbconv space"),
    ({"base": BASE_ID, "base_space": "mbconv-channels"}, "base_space must be an mbconv space"),
    ({"base": "-".join(["skip"] * 21)}, "no MBConv layer"),
    ({"base": "nowhere/found.json"}, "cannot read base result nowhere/found.json"),
    ({"base": 3}, "base must be an arch id"),
])
def test_bad_bases_are_named(kwargs: dict, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        create_space("mbconv-channels", **kwargs)


def test_bad_result_files_are_named(tmp_path: Path) -> None:
    cases = {"text.json": ("not json", "is not JSON"), "list.json": ("[1]", "must hold a JSON object"),
             "noid.json": (json.dumps({"space": "mbconv-small"}), "has no arch_id"),
             "nb.json": (json.dumps(result_dict(arch_id="|none~0|", space="nb201", config={})), "mbconv space")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(UserInputError, match=message):
            channel_space_for(tmp_path / name)
    (tmp_path / "found.json").write_text(json.dumps(result_dict()))
    with pytest.raises(UserInputError, match="resolution=64 given, but base result .* resolution=32"):
        create_space("mbconv-channels", base=str(tmp_path / "found.json"), resolution=64)


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_one_config_builds_the_base(space: MBConvChannelSpace) -> None:
    ours, base = space.build((ONE,) * space.n_layers), space.base_space.build(space.base_arch)
    assert str(ours) == str(base) and _n_params(ours) == _n_params(base)
    assert [v.shape for v in ours.state_dict().values()] == [v.shape for v in base.state_dict().values()]


def test_scale_changes_hidden_widths_only(space: MBConvChannelSpace) -> None:
    """Layer i of the base is module 2 + i; an MBConv's expand conv makes the hidden width."""
    base = space.base_space.build(space.base_arch)
    narrow, wide = space.build((0,) * space.n_layers), space.build((6,) * space.n_layers)
    plan = space.base_space._plan
    for i, (c_in, c_out, _) in enumerate(plan):
        b, n, w = base[2 + i], narrow[2 + i], wide[2 + i]
        if i in SKIPS:  # untouched: the same module and widths
            assert str(n) == str(w) == str(b) and _n_params(n) == _n_params(b)
            continue
        assert isinstance(n, MBConv) and isinstance(w, MBConv)
        full = c_in * _MB_SPECS[space.base_arch[i]][1]
        assert b.body[0][0].out_channels == full
        assert n.body[0][0].out_channels == scale_channels(full, 0.5) < full
        assert w.body[0][0].out_channels == scale_channels(full, 2.0) == 2 * full
        for m in (n, w):  # depthwise on the hidden width; output width and residual are the base's
            assert m.body[1][0].groups == m.body[0][0].out_channels
            assert m.body[-1][0].out_channels == c_out and m.residual == b.residual
    assert sum(base[2 + i].residual for i in space.live_layers) >= 10  # residual layers are scaled too
    assert space.hidden_widths((ONE,) * space.n_layers) == tuple(
        base[2 + i].body[0][0].out_channels for i in space.live_layers)


def test_mixed_config_runs_and_costs_rise_with_scale(space: MBConvChannelSpace) -> None:
    import torch

    arch = space.sample(np.random.default_rng(3))
    with torch.no_grad():
        assert space.build(arch)(torch.zeros(space.input_shape(2))).shape == (2, 10)
    costs = [space.costs((s,) * space.n_layers) for s in (0, ONE, 6)]
    for key in ("flops", "params", "mem_access"):
        assert costs[0][key] < costs[1][key] < costs[2][key]
    assert costs[1] == space.base_space.costs(space.base_arch)
    bump = list((ONE,) * space.n_layers)
    bump[4] = 6  # one layer wider: more FLOPs than the base, fewer than all wider
    assert costs[1]["flops"] < space.costs(bump)["flops"] < costs[2]["flops"]


def test_encodings(space: MBConvChannelSpace) -> None:
    arch = space.sample(np.random.default_rng(5))
    onehot = space.to_onehot(arch)
    assert onehot.shape == (space.n_layers * 7,)
    np.testing.assert_array_equal(onehot.reshape(-1, 7).argmax(1), arch)
    adj, feats = space.to_graph(arch)
    assert adj.shape == (18, 18) and np.array_equal(adj, np.eye(18, k=1, dtype=np.float32))
    assert feats.shape == (18, 7 + 6) and feats.dtype == np.float32
    np.testing.assert_array_equal(feats[:, :7].argmax(1), arch)
    np.testing.assert_array_equal(feats[:, 7:].argmax(1), [space.base_arch[i] for i in space.live_layers])
    assert SKIP not in feats[:, 7:].argmax(1)


def test_layer_labels_name_the_base_op_and_scale(space: MBConvChannelSpace) -> None:
    arch = (6,) * space.n_layers
    assert space.layer_label(arch, "/3/3.body/Conv") == "L01:k3e3x2"  # base layer 1 (the first live one)
    assert space.layer_label(arch, "/2/Conv") == "L00:skip"  # skip layers keep the base's label
    assert space.layer_label(arch, "/0/0.0/Conv") == "stem"
    assert space.layer_label(arch, "/23/Conv") == "head"


def test_widened_refuses(space: MBConvChannelSpace) -> None:
    with pytest.raises(UserInputError, match="widen its base space"):
        space.widened(1.5)


def test_onnx_export_matches_the_base(space: MBConvChannelSpace, tmp_path: Path) -> None:
    import onnx

    from spaces import export_onnx

    ours = export_onnx(space, (ONE,) * space.n_layers, tmp_path / "ch")
    base = export_onnx(space.base_space, space.base_arch, tmp_path / "base")
    count = [len(onnx.load(str(m.path)).graph.node) for m in (ours, base)]
    assert count[0] == count[1] > 0
    wide = export_onnx(space, space.sample(np.random.default_rng(1)), tmp_path / "wide")
    assert wide.nbytes != ours.nbytes
