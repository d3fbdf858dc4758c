"""The space registry: names, errors, config handling."""

from __future__ import annotations

import pytest

from spaces import UnknownSpaceError, create_space, list_spaces, register_space, unregister_space
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
    assert "mbconv, mbconv-small, nb201" in message
    assert "did you mean 'nb201'" in message
    with pytest.raises(KeyError, match="known: "):
        create_space("resnet")


def test_unknown_config_key():
    with pytest.raises(ValueError, match="no config key.* widht_mult"):
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
        with pytest.raises(ValueError, match="already registered"):
            register_space("test-tiny-nb201")(tiny)
    finally:
        unregister_space("test-tiny-nb201")
    assert "test-tiny-nb201" not in list_spaces()
    with pytest.raises(ValueError, match="non-empty str"):
        register_space("")
