"""FBNet space (HW-NAS-Bench / HELP, CIFAR-100): op list, ids, encodings, builder and HELP's arch file."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from spaces import InvalidArchError, create_space
from spaces.fbnet import (
    OPS,
    SKIP,
    FBNetBlock,
    help_fbnet_archs,
    layer_plan,
    load_plain_torch_file,
    op_spec,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
HELP_FBNET = SHARED / "data" / "HELP" / "data" / "fbnet"
needs_help = pytest.mark.skipif(not (HELP_FBNET / "arch.pt").exists(),
                                reason=f"HELP FBNet data not found at {HELP_FBNET}")


@pytest.fixture(scope="module")
def space():
    return create_space("fbnet")


def test_shape_of_the_space(space):
    assert space.n_layers == 22 and space.n_ops == 9 and space.size == 9**22
    assert space.config == {"num_classes": 100, "resolution": 32}
    assert space.input_shape(2) == (2, 3, 32, 32)
    assert OPS[SKIP] == "skip"
    assert op_spec("k5_e6") == (5, 6, 1) and op_spec("k3_e1_g2") == (3, 1, 2)
    with pytest.raises(ValueError, match="not a block name"):
        op_spec("k3e1")


@needs_help
def test_op_list_matches_help_metainfo():
    meta = load_plain_torch_file(HELP_FBNET / "metainfo.pt")
    assert meta["dataset"] == "cifar100" and meta["num_classes"] == 100
    names: dict[int, set[str]] = {}
    for entry in meta["arch"]:
        for idx, name in zip(entry["op_idx_list"], entry["arch_str"], strict=True):
            names.setdefault(idx, set()).add(name)
    assert {idx: next(iter(n)) for idx, n in names.items()} == dict(enumerate(OPS))
    assert all(len(n) == 1 for n in names.values())


def test_layer_plan_is_the_cifar_stage_plan():
    plan = layer_plan()
    assert len(plan) == 22
    assert [c_out for _, c_out, _ in plan] == [16] + [24] * 4 + [32] * 4 + [64] * 4 + [112] * 4 + [184] * 4 + [352]
    assert [i for i, (_, _, stride) in enumerate(plan) if stride == 2] == [5, 9, 17]
    assert plan[0][0] == 16 and all(plan[i][0] == plan[i - 1][1] for i in range(1, 22))


def test_arch_id_and_parse(space):
    arch = tuple(i % 9 for i in range(22))
    arch_id = space.arch_id(arch)
    assert arch_id.split("-")[:9] == list(OPS)
    assert space.parse(arch_id) == arch
    for arch in space.sample_unique(50, np.random.default_rng(1)):
        assert space.parse(space.arch_id(arch)) == arch
    with pytest.raises(InvalidArchError, match="needs 22"):
        space.parse("skip-skip")
    with pytest.raises(InvalidArchError, match="unknown op 'k7_e6' at layer 3"):
        space.parse("-".join(["skip"] * 3 + ["k7_e6"] + ["skip"] * 18))
    with pytest.raises(InvalidArchError, match="must be a str"):
        space.parse(None)


def test_encodings(space):
    arch = space.sample(np.random.default_rng(3))
    grid = space.to_onehot(arch).reshape(22, 9)
    np.testing.assert_array_equal(grid.argmax(1), arch)
    np.testing.assert_array_equal(grid.sum(1), 1)
    adj, feats = space.to_graph(arch)
    assert adj.shape == (22, 22) and feats.shape == (22, 9)
    np.testing.assert_array_equal(adj, np.eye(22, k=1))
    np.testing.assert_array_equal(feats, grid)


def test_build_forward_and_blocks(space):
    arch = (SKIP,) + (OPS.index("k3_e1_g2"),) * 4 + (OPS.index("k5_e6"),) * 4 + (SKIP,) * 13
    model = space.build(arch)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)
    layers = list(model.layers)
    assert isinstance(layers[0], nn.Identity)  # 16 -> 16, stride 1: a real skip
    grouped = layers[1]
    assert isinstance(grouped, FBNetBlock) and grouped.expand[0].groups == 2 and grouped.project[0].groups == 2
    assert not isinstance(grouped.shuffle, nn.Identity)
    assert grouped.depthwise[0].kernel_size == (3, 3) and not grouped.residual  # 16 -> 24
    assert layers[2].residual
    wide = layers[5]
    assert wide.depthwise[0].kernel_size == (5, 5) and wide.depthwise[0].stride == (2, 2)
    assert wide.expand[0].out_channels == 24 * 6
    assert isinstance(layers[9], nn.Sequential) and layers[9][0].stride == (2, 2)  # skip that changes shape
    assert space.layer_label(arch, "/layers/layers.5/depthwise/depthwise.0/Conv") == "L05:k5_e6"
    assert space.layer_label(arch, "layers.13") == "L13:skip"
    assert space.layer_label(arch, "/head/head.0/Conv") == "head"
    assert space.layer_label(arch, "/classifier/Gemm") == "classifier"


def test_costs_match_hw_nas_bench_builder(space):
    """Figures checked against HW-NAS-Bench's own FBNet_Infer (CIFAR, 100 classes) built from the same ops."""
    costs = space.costs((OPS.index("k5_e6"),) * 22)
    assert costs["flops"] == 160_926_080 and costs["params"] == 3_749_652


def test_other_configs():
    small = create_space("fbnet", num_classes=10, resolution=64)
    assert small.input_shape() == (1, 3, 64, 64)
    with torch.no_grad():
        assert small.build((SKIP,) * 22)(torch.zeros(1, 3, 64, 64)).shape == (1, 10)
    with pytest.raises(ValueError, match="num_classes must be an int"):
        create_space("fbnet", num_classes=0)


@needs_help
def test_help_arch_file_decodes_to_valid_archs(space):
    archs = help_fbnet_archs(SHARED)
    assert len(archs) == 5000 and len(set(archs)) == 5000
    assert all(space.validate(a) == a for a in archs)
    assert archs[0] == (7, 8, 1, 8, 4, 8, 8, 8, 7, 4, 1, 4, 7, 3, 2, 7, 3, 2, 4, 2, 4, 5)
    meta = load_plain_torch_file(HELP_FBNET / "metainfo.pt")
    for arch, entry in zip(archs[:100], meta["arch"][:100], strict=True):
        assert space.arch_id(arch) == "-".join(entry["arch_str"])
    assert help_fbnet_archs(SHARED / "data" / "HELP") == archs  # the HELP folder works as well


def _torch_zip(path: Path, payload: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")
    return path


def test_plain_torch_file_reader_rejects_bad_files(tmp_path):
    assert load_plain_torch_file(_torch_zip(tmp_path / "ok.pt", pickle.dumps([1.5, 2]))) == [1.5, 2]
    (tmp_path / "text.pt").write_text("not a zip")
    with pytest.raises(ValueError, match="not a torch zip archive"):
        load_plain_torch_file(tmp_path / "text.pt")
    with pytest.raises(ValueError, match="no such file"):
        load_plain_torch_file(tmp_path / "absent.pt")
    evil = _torch_zip(tmp_path / "evil.pt", pickle.dumps(print))  # a global: could be any callable
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        load_plain_torch_file(evil)
    with zipfile.ZipFile(tmp_path / "empty.pt", "w") as archive:
        archive.writestr("archive/version", "3\n")
    with pytest.raises(ValueError, match="expected one"):
        load_plain_torch_file(tmp_path / "empty.pt")


def test_help_arch_file_errors(tmp_path):
    fbnet = tmp_path / "data" / "fbnet"
    fbnet.mkdir(parents=True)
    _torch_zip(fbnet / "arch.pt", pickle.dumps([[0] * 22, [0] * 21]))
    with pytest.raises(ValueError, match="row 1: .*22 entries"):
        help_fbnet_archs(tmp_path)
    with pytest.raises(ValueError, match="no HELP data"):
        help_fbnet_archs(tmp_path / "nowhere")
