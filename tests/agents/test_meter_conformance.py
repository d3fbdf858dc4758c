"""Every registered meter declares its options properly (the host checks [meter.options] against them)."""

import pytest

from agents.meters import METERS, PowerMeter
from agents.meters.checks import check_meter
from agents.options import Option


@pytest.mark.parametrize("name", METERS.names())
def test_registered_meter_conforms(name):
    assert check_meter(METERS.get(name), name) == []


def test_problems_are_reported():
    class Broken(PowerMeter):
        OPTIONS = {"exe": Option(None, "str", "a binary"), "n": 2}  # noqa: RUF012

        def __init__(self, rail=None, root="/"):
            PowerMeter.__init__(self, rail=rail, root=root)

        @classmethod
        def available(cls, root="/"):
            raise OSError("no sysfs")

    problems = "\n".join(check_meter(Broken))
    for needle in ("name must be set", "OPTIONS['n'] must be an Option", "has no parameter 'rate_hz'",
                   "has no parameter 'exe'", "available() raised OSError: no sysfs"):
        assert needle in problems
    assert check_meter(dict) == ["<class 'dict'> is not a PowerMeter subclass"]
