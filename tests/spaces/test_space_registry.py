"""The space registry: names, errors, config handling."""

from __future__ import annotations

import pytest

from hwsearch.registry import UnknownSearchError, search_class
from predictors.registry import UnknownPredictorError, predictor_class
from spaces import (
    UnknownNameError,
    UnknownSpaceError,
    UserInputError,
    create_space,
    list_spaces,
    register_space,
    unregister_space,
)
from spaces.names import ClassRegistry
from spaces.nb201 import NB201Space


def test_registered_names():
    assert {"nb201", "mbconv", "mbconv-small"} <= set(list_spaces())
    assert list_spaces() == sorted(list_spaces())
    for name in ("nb201", "mbconv", "mbconv-small"):
        assert create_space(name).name == name


def test_unknown_space_suggests_a_name():
    with pytest.raises(UnknownSpaceError) as caught:
        create_space("nb-201")
    message = str(caught.value)
    assert isinstance(caught.value, KeyError)
    assert "unknown search space 'nb-201'" in message
    known = "mbconv, mbconv-channels, mbconv-small, mobilenetv2, mobilenetv2-small, nb201, resnet50, resnet50-small"
    assert known in message
    assert "did you mean 'nb201'" in message
    with pytest.raises(KeyError, match="known: "):
        create_space("resnet18")


def test_unknown_config_key():
    with pytest.raises(UserInputError, match="no config key.* widht_mult"):
        create_space("mbconv", widht_mult=0.5)


def test_none_config_values_take_defaults():
    assert create_space("mbconv-small", width_mult=None).config == create_space("mbconv-small").config


def test_register_and_duplicate():
    @register_space("test-tiny-nb201")
    def tiny(C: int = 4) -> NB201Space:
        return NB201Space("test-tiny-nb201", C=C, N=1)

    try:
        assert "test-tiny-nb201" in list_spaces()
        assert create_space("test-tiny-nb201", C=8).config["C"] == 8
        register_space("test-tiny-nb201")(tiny)  # the same factory again: a no-op
        with pytest.raises(ValueError, match="already registered"):
            register_space("test-tiny-nb201")(lambda: NB201Space("other", C=4, N=1))
        with pytest.raises(TypeError, match="not callable"):
            register_space("test-not-callable")(42)
    finally:
        unregister_space("test-tiny-nb201")
    assert "test-tiny-nb201" not in list_spaces()
    with pytest.raises(ValueError, match="non-empty str"):
        register_space("")


@pytest.mark.parametrize(("lookup", "error", "what"), [
    (create_space, UnknownSpaceError, "search space"),
    (predictor_class, UnknownPredictorError, "predictor kind"),
    (search_class, UnknownSearchError, "search"),
])
def test_one_unknown_name_pattern(lookup, error, what):
    """Spaces, predictors and searches share one registry and one error: a KeyError whose str is the message."""
    with pytest.raises(error) as caught:
        lookup("no-such-name")
    assert isinstance(caught.value, UnknownNameError) and isinstance(caught.value, KeyError)
    assert str(caught.value).startswith(f"unknown {what} 'no-such-name' (known: ")


def test_host_and_board_registries_share_the_error_and_the_message():
    """One base class (agents.registry.UnknownEntryError) and one message for every registry, host or board."""
    from agents.registry import Registry, UnknownEntryError

    board = Registry("search space")
    for name in list_spaces():
        board.register(name)(object())
    with pytest.raises(UnknownEntryError) as on_board:
        board.get("nb-201")
    with pytest.raises(UnknownEntryError) as on_host:  # UnknownSpaceError is one
        create_space("nb-201")
    assert isinstance(on_host.value, UnknownSpaceError)
    assert str(on_host.value) == str(on_board.value) and "did you mean 'nb201'?" in str(on_host.value)


def test_registry_loads_builtins_on_first_lookup():
    registry: ClassRegistry = ClassRegistry("test thing", "tag", "register_thing", UnknownNameError,
                                            ("spaces.tests_no_such_module",))
    with pytest.raises(ModuleNotFoundError):
        registry.names()

    class Thing:
        pass

    empty: ClassRegistry = ClassRegistry("test thing", "tag", "register_thing", UnknownNameError)
    assert empty.register("a")(Thing) is Thing and Thing.tag == "a"
    with pytest.raises(TypeError, match="not a class"):
        empty.register("b")(lambda: None)
    with pytest.raises(TypeError, match="UnknownNameError subclass"):
        ClassRegistry("test thing", None, "register_thing", KeyError)
