"""Plugins shipped with the agent: imported once, before a registry first answers; failures are reported."""

import sys

import pytest

from agents import plugins
from agents.plugins import PluginError, import_plugin, import_plugin_file, load_bundled, plugin_file
from agents.registry import Registry, UnknownEntryError


@pytest.fixture
def bundle(tmp_path, monkeypatch):
    monkeypatch.setattr(plugins, "_BUNDLED", {})
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith(("edgeprof_plugin_", plugins.BUNDLE_DIR)):
            del sys.modules[name]


def test_load_bundled_imports_each_file_once_and_reports_failures(bundle, monkeypatch):
    reg = Registry("gadget")
    monkeypatch.setitem(sys.modules, "gadget_registry", type(sys)("gadget_registry"))
    sys.modules["gadget_registry"].REG = reg
    (bundle / "a_good.py").write_text("import gadget_registry\ngadget_registry.REG.register('widget')(object)\n")
    (bundle / "b_bad.py").write_text("raise RuntimeError('needs Python 3.8')\n")
    (bundle / "notes.txt").write_text("not a plugin")
    out = load_bundled(str(bundle))
    assert out["a_good.py"] is None and "RuntimeError: needs Python 3.8" in out["b_bad.py"]
    assert set(out) == {"a_good.py", "b_bad.py"}
    assert load_bundled(str(bundle)) == out  # once: widget is not registered twice
    assert reg.names() == ["widget"]


def test_a_registry_loads_its_plugins_before_it_first_answers():
    calls = []
    reg = Registry("gadget", loader=lambda: calls.append(1) or {"x.py": "SyntaxError: bad"})
    reg.register("builtin")(object)  # registering does not trigger the loader
    assert calls == []
    assert "builtin" in reg
    assert reg.names() == ["builtin"] and len(reg) == 1 and calls == [1]
    with pytest.raises(UnknownEntryError, match="plugins that failed to import: x.py: SyntaxError: bad"):
        reg.get("mine")


def test_plugin_names_and_files(tmp_path, monkeypatch):
    (tmp_path / "mod_plugin.py").write_text("VALUE = 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert plugin_file("mod_plugin.py", str(tmp_path)) == str(tmp_path / "mod_plugin.py")
    assert plugin_file("mod_plugin") == str(tmp_path / "mod_plugin.py")
    with pytest.raises(PluginError, match="is a package"):
        plugin_file("pkg")
    by_name = import_plugin("mod_plugin")
    assert by_name.__name__ == "mod_plugin"
    # the same file by path: the module imported by name, not a second copy
    assert import_plugin(str(tmp_path / "mod_plugin.py")) is by_name
    assert import_plugin_file(str(tmp_path / "mod_plugin.py")) is by_name
    del sys.modules["mod_plugin"]
