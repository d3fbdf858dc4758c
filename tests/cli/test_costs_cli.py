"""`edgeprof costs`: per-layer FLOPs, memory accesses and intensity of one network, as a table and as JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import cli

from spaces import create_space

MBCONV_ARCH = "-".join(["k3e3", "k5e6", "skip"] * 7)


def test_thesis_example_as_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "costs", "--space", "conv-probe", "--arch", "i128-o128")
    assert code == 0, err
    assert "28,901,376" in out and "197,632" in out and "146.2" in out and "128×14×14" in out
    assert "total: 28,901,376 FLOPs" in out and "147,456 params" in out


def test_json_totals_are_the_space_costs_and_the_sum_of_the_layers(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "costs", "--space", "mbconv-small", "--arch", MBCONV_ARCH, "--json")
    assert code == 0, err
    report = json.loads(out)
    space = create_space("mbconv-small")
    arch = space.parse(MBCONV_ARCH)
    assert report["space"] == "mbconv-small" and report["config"] == space.config and report["arch"] == MBCONV_ARCH
    assert report["totals"] == space.costs(arch)
    assert report["totals"]["flops"] == sum(layer["flops"] for layer in report["layers"])
    first, last = report["layers"][0], report["layers"][-1]
    assert (first["part"], first["kind"], first["in_shape"], first["stride"]) == ("stem", "conv", [3, 224, 224], [2, 2])
    assert (last["part"], last["kind"], last["kernel"]) == ("classifier", "linear", None)
    assert {layer["kind"] for layer in report["layers"]} == {"conv", "depthwise", "linear"}


def test_width_counts_the_widened_network(capsys: pytest.CaptureFixture[str]) -> None:
    base = json.loads(cli(capsys, "costs", "--space", "mbconv-small", "--arch", MBCONV_ARCH, "--json")[1])
    code, out, err = cli(capsys, "costs", "--space", "mbconv-small", "--arch", MBCONV_ARCH, "--width", "2", "--json")
    assert code == 0, err
    wide = json.loads(out)
    assert wide["width"] == 2.0 and wide["config"]["width_mult"] == pytest.approx(2 * base["config"]["width_mult"])
    assert wide["totals"]["flops"] > 3 * base["totals"]["flops"]
    assert wide["totals"]["intensity"] > base["totals"]["intensity"]


def test_space_config_is_used(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "costs", "--space", "conv-probe", "--arch", "i32-o32", "--json",
                         "--space-config", '{"h": 56, "w": 56, "k": 1, "channels": [32, 64]}')
    assert code == 0, err
    report = json.loads(out)
    assert report["config"]["channels"] == [32, 64] and report["input_shape"] == [1, 32, 56, 56]
    assert round(report["totals"]["intensity"], 1) == 15.9


def test_nb201_arch_ids_pass_through(capsys: pytest.CaptureFixture[str]) -> None:
    space = create_space("nb201")
    arch_id = space.arch_id(space.sample(np.random.default_rng(0)))
    code, out, err = cli(capsys, "costs", "--space", "nb201", "--arch", arch_id, "--json")
    assert code == 0, err
    assert json.loads(out)["totals"] == space.costs(space.parse(arch_id))


@pytest.mark.parametrize(("argv", "named"), [
    (["--space", "nb201x", "--arch", "x"], "nb201x"),
    (["--space", "conv-probe", "--arch", "i100-o16"], "input channels 100"),
    (["--space", "mbconv-small", "--arch", "k3e3-k9e9"], "21"),
    (["--space", "fbnet", "--arch", "x", "--width", "2"], "space fbnet has no width multiplier"),
    (["--space", "mbconv-small", "--arch", MBCONV_ARCH, "--width", "0"], "phi must be a finite number > 0"),
    (["--space", "mbconv-small", "--arch", MBCONV_ARCH, "--width", "inf"], "phi must be a finite number > 0"),
    (["--space", "conv-probe", "--arch", "i16-o16", "--space-config", '{"z": 1}'], "no config key(s) z"),
    (["--space", "conv-probe", "--arch", "i16-o16", "--space-config", '{"channels": [32, 16]}'],
     "strictly increasing"),
])
def test_bad_input_exits_2_naming_it(capsys: pytest.CaptureFixture[str], argv: list[str], named: str) -> None:
    code, out, err = cli(capsys, "costs", *argv)
    assert code == 2 and named in err and "Traceback" not in err
    code, out, _ = cli(capsys, "costs", *argv, "--json")
    assert code == 2 and named in json.loads(out)["error"]["message"]
