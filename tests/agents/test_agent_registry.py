import sys

import pytest

from agents.registry import DuplicateEntryError, EntryImportError, Registry, UnknownEntryError


class Good:
    @staticmethod
    def available():
        return None


class Missing:
    @classmethod
    def available(cls):
        return "libfoo is not installed"


class Broken:
    @staticmethod
    def available():
        raise RuntimeError("boom")


def make():
    reg = Registry("backend")
    reg.register("good")(Good)
    reg.register("missing")(Missing)
    return reg


def test_register_get_names():
    reg = make()
    assert reg.get("good") is Good
    assert reg.names() == ["good", "missing"]
    assert "good" in reg and len(reg) == 2


def test_register_is_a_decorator_returning_the_class():
    reg = Registry("meter")

    @reg.register("x")
    class X:
        pass

    assert reg.get("x") is X


def test_unknown_names_known_entries_and_suggests():
    reg = make()
    with pytest.raises(UnknownEntryError) as info:
        reg.get("godo")
    msg = str(info.value)
    assert "unknown backend 'godo'" in msg
    assert "good, missing" in msg
    assert "did you mean 'good'?" in msg
    assert isinstance(info.value, KeyError)


def test_duplicates_are_errors():
    reg = make()
    with pytest.raises(DuplicateEntryError):
        reg.register("good")(Good)
    with pytest.raises(DuplicateEntryError):
        reg.add_lazy("missing", "json:dumps")


def test_bad_names_and_targets():
    reg = Registry("backend")
    with pytest.raises(ValueError):
        reg.register("")(Good)
    with pytest.raises(ValueError):
        reg.add_lazy("x", "no_colon_here")


def test_lazy_entry_imports_only_when_asked(tmp_path, monkeypatch):
    mod = "edgeprof_lazy_probe_mod"
    (tmp_path / f"{mod}.py").write_text(
        "class Thing:\n    @staticmethod\n    def available():\n        return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, mod, raising=False)
    reg = Registry("backend")
    reg.add_lazy("thing", f"{mod}:Thing")
    assert reg.names() == ["thing"]
    assert mod not in sys.modules
    thing = reg.get("thing")
    assert mod in sys.modules and thing.__name__ == "Thing"
    assert reg.get("thing") is thing


def test_lazy_import_failures_are_typed_and_reported():
    reg = Registry("backend")
    reg.add_lazy("nope", "edgeprof_no_such_module_xyz:Backend")
    reg.add_lazy("noattr", "json:NoSuchThing")
    with pytest.raises(EntryImportError) as info:
        reg.get("nope")
    assert "edgeprof_no_such_module_xyz" in str(info.value)
    with pytest.raises(ImportError):
        reg.get("noattr")
    reasons = reg.available()
    assert "cannot import" in reasons["nope"]
    assert "no attribute" in reasons["noattr"]


def test_available_reports_reasons():
    reg = make()
    reg.register("broken")(Broken)
    reg.register("plain")(object())
    reasons = reg.available()
    assert reasons["good"] is None
    assert reasons["missing"] == "libfoo is not installed"
    assert "boom" in reasons["broken"]
    assert reasons["plain"] is None


def test_agent_registries():
    from agents.backends import BACKENDS
    from agents.meters import METERS

    assert {"onnxruntime", "debug"} <= set(BACKENDS.names())
    assert {"none", "null"} <= set(METERS.names())
    assert METERS.available()["none"] is None
    assert BACKENDS.available()["debug"] is None
