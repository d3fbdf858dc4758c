"""Training data from the Store: medians per arch, one setting at a time, clear errors; split; fingerprint."""

from __future__ import annotations

import numpy as np
import pytest

from predictors.data import (
    AmbiguousSettingError,
    NoDeviceDataError,
    NoMatchingSettingError,
    data_fingerprint,
    grouped_median,
    load_devices,
    load_with_settings,
    load_xy,
    setting_config,
    split,
)
from profiler.importing import imported_model, imported_result
from profiler.store import Store
from spaces import create_space
from spaces.errors import UserInputError


def _add(store: Store, device: str, space: str, values: dict[int, list[float]], batch: int = 1,
         backend: str = "unknown", status_error: bool = False) -> list[str]:
    sp = create_space(space)
    archs = {i: sp.from_index(i) if space == "nb201" else sp.sample(np.random.default_rng(i)) for i in values}
    models = {i: imported_model(sp, a) for i, a in archs.items()}
    store.add_device(device, "cpu", {})
    store.add_models(models.values())
    results = []
    for i, ms_list in values.items():
        for r, ms in enumerate(ms_list):
            res = imported_result(job_id=f"job-{device}-{backend}-{batch}", task_id=f"{i}-{r}",
                                  model_sha256=models[i].sha256, device=device, median_ms=ms, batch=batch,
                                  backend=backend, environment={})
            if status_error:
                res = {**res, "status": "error", "error": {"type": "X", "message": "boom"}}
            results.append(res)
    store.add_results(results)
    return [sp.arch_id(archs[i]) for i in values]


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "lat.db") as s:
        yield s


def test_median_over_repeats_in_first_measured_order(store):
    ids = _add(store, "pi", "nb201", {5: [3.0, 1.0, 2.0], 2: [4.0], 9: [1.0, 2.0]})
    _add(store, "pi", "nb201", {7: [100.0]}, status_error=True)  # errors never count
    got_ids, y = load_xy(store, "pi", "nb201")
    assert got_ids == ids
    np.testing.assert_array_equal(y, [2.0, 4.0, 1.5])


def test_nothing_there_names_the_devices_that_have_data(store):
    _add(store, "pi", "nb201", {1: [1.0]})
    _add(store, "nano", "nb201", {1: [2.0]})
    with pytest.raises(ValueError, match=r"no ok measurements of space 'nb201' on device 'xavier'.*"
                                         r"devices with nb201 data: nano, pi"):
        load_xy(store, "xavier", "nb201")
    with pytest.raises(NoDeviceDataError, match="devices with fbnet data: none"):
        load_xy(store, "pi", "fbnet")


def test_a_setting_the_device_lacks_lists_its_settings_and_the_flag(store):
    """`--backend tensorrrt` on a device with data: its settings, not just 'devices with nb201 data'."""
    _add(store, "xavier", "nb201", {1: [1.0], 2: [2.0]}, backend="onnxruntime")
    _add(store, "xavier", "nb201", {1: [0.5]}, backend="tensorrt")
    with pytest.raises(NoMatchingSettingError) as e:
        load_xy(store, "xavier", "nb201", backend="tensorrrt")
    msg = str(e.value)
    assert msg.startswith("no ok measurements of space 'nb201' on device 'xavier' with backend='tensorrrt'; ")
    assert ("xavier has nb201 measurements under 2 settings: backend=onnxruntime precision=unknown batch=1; "
            "backend=tensorrt precision=unknown batch=1; pick one with --backend (Python: backend=)") in msg
    assert "devices with" not in msg and isinstance(e.value, UserInputError)
    # one setting: the flags that did not match are named, the config shown when it was one of them
    _add(store, "pi", "nb201", {1: [1.0]})
    with pytest.raises(NoMatchingSettingError, match=r"under 1 setting: backend=unknown precision=unknown "
                                                     r"batch=1 space_config=\{.*\}; pick one with "
                                                     r"--space-config/--batch \(Python: space_config=, batch=\)"):
        load_xy(store, "pi", "nb201", batch=8, space_config={"C": 8})


def test_load_with_settings_returns_the_setting_and_its_full_config(store):
    _add(store, "pi", "nb201", {1: [1.0], 2: [3.0]}, backend="onnxruntime")
    ids, y, setting = load_with_settings(store, ["pi"], "nb201", space_config={"C": 16})["pi"]
    assert len(ids) == 2 and y.tolist() == [1.0, 3.0] and setting[1:] == ("onnxruntime", "unknown", 1)
    assert setting_config(setting) == create_space("nb201").config


def test_mixed_settings_must_be_picked(store):
    _add(store, "gpu", "nb201", {1: [1.0], 2: [2.0]}, batch=1)
    _add(store, "gpu", "nb201", {1: [10.0]}, batch=32)
    with pytest.raises(ValueError, match=r"gpu has nb201 measurements under 2 settings: "
                                         r"backend=\S+ precision=\S+ batch=1; backend=\S+ precision=\S+ batch=32; "
                                         r"pick one with --batch \(Python: batch=\)"):
        load_xy(store, "gpu", "nb201")
    ids, y = load_xy(store, "gpu", "nb201", batch=32)
    assert len(ids) == 1 and y[0] == 10.0
    assert len(load_xy(store, "gpu", "nb201", batch=1, backend="unknown", precision="unknown")[0]) == 2


def test_grouped_median_is_numpys_median_per_key_in_first_seen_order():
    rng = np.random.default_rng(0)
    keys = [f"a{k}" for k in rng.integers(0, 50, 400)]
    values = rng.lognormal(size=400)
    ids, med = grouped_median(keys, values)
    assert ids == list(dict.fromkeys(keys))
    for k, m in zip(ids, med, strict=True):
        assert m == np.median([v for kk, v in zip(keys, values, strict=True) if kk == k])
    ids, med = grouped_median(["x", "y"], np.array([2.0, 1.0]))  # one value each: no sort needed
    assert ids == ["x", "y"] and med.tolist() == [2.0, 1.0]


def test_load_devices_picks_each_devices_setting(store):
    _add(store, "pi", "nb201", {1: [1.0], 2: [2.0]}, backend="onnxruntime")
    _add(store, "xavier", "nb201", {1: [0.5], 2: [0.7]}, backend="onnxruntime")
    _add(store, "xavier", "nb201", {1: [0.1], 2: [0.2], 3: [0.3]}, backend="tensorrt")
    with pytest.raises(AmbiguousSettingError, match="pick one with --backend") as e:
        load_devices(store, ["pi", "xavier"], "nb201")
    assert e.value.device == "xavier" and [st[1] for st in e.value.settings] == ["onnxruntime", "tensorrt"]
    # a filter applies to every device: pi has no tensorrt data
    with pytest.raises(NoMatchingSettingError, match="device 'pi' with backend='tensorrt'.*backend=onnxruntime"):
        load_devices(store, ["pi", "xavier"], "nb201", backend="tensorrt")
    # ... unless it only picks among the settings of the devices that have several (meta-training)
    got = load_devices(store, ["pi", "xavier"], "nb201", backend="tensorrt", only_where_ambiguous=True)
    assert got["pi"][1].tolist() == [1.0, 2.0] and got["xavier"][1].tolist() == [0.1, 0.2, 0.3]
    assert load_xy(store, "xavier", "nb201", backend="onnxruntime")[1].tolist() == [0.5, 0.7]
    # a space config matches on the keys given (the store keeps the full config)
    assert len(load_xy(store, "pi", "nb201", space_config={"C": 16})[0]) == 2
    with pytest.raises(ValueError, match="space_config=.*'C': 8"):
        load_xy(store, "pi", "nb201", space_config={"C": 8})


def test_split_is_deterministic_and_disjoint():
    ids = [f"a{i}" for i in range(50)]
    y = np.arange(50, dtype=float) + 1
    tr, ytr, te, _ = split(ids, y, 30, seed=3)
    assert len(tr) == 30 and len(te) == 20 and not set(tr) & set(te) and set(tr) | set(te) == set(ids)
    assert [int(a[1:]) + 1 for a in tr] == ytr.tolist()
    assert split(ids, y, 30, seed=3)[0] == tr and split(ids, y, 30, seed=4)[0] != tr
    for bad in (0, 50, 2.5):
        with pytest.raises(ValueError, match="train_n"):
            split(ids, y, bad)


def test_fingerprint_ignores_order_but_not_values():
    ids, y = ["a", "b", "c"], np.array([1.0, 2.0, 3.0])
    fp = data_fingerprint(ids, y)
    assert len(fp) == 64 and fp == data_fingerprint(ids[::-1], y[::-1])
    assert fp != data_fingerprint(ids, y + [0, 0, 1e-9])


def test_energy_is_read_from_the_energy_column(store):
    sp = create_space("nb201")
    arch = sp.from_index(3)
    model = imported_model(sp, arch)
    store.add_device("xavier", "jetson", {})
    store.add_models([model])
    store.add_results([imported_result(job_id="j", task_id="0", model_sha256=model.sha256, device="xavier",
                                       median_ms=4.0, environment={}, energy={"gross_mj": 30.0, "net_mj": 12.5})])
    _add(store, "pi", "nb201", {1: [1.0]})  # latency only: no energy figure
    assert load_xy(store, "xavier", "nb201", quantity="energy")[1].tolist() == [12.5]  # net of idle power
    assert load_xy(store, "xavier", "nb201")[1].tolist() == [4.0]
    with pytest.raises(ValueError, match="no ok energy measurements.*power meter.*'pi'"):
        load_xy(store, "pi", "nb201", quantity="energy")
    with pytest.raises(ValueError, match="quantity must be"):
        load_xy(store, "pi", "nb201", quantity="power")
