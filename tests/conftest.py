"""Shared fixtures: a real mosquitto on a free loopback port, the example office bound to it, a running
controller, node runtimes, and gpiozero's mock pin factory.

System tools (mosquitto, espeak-ng, chromium, debootstrap) are required through ``require_tool``: a missing
tool skips the test with the install hint on a developer machine, and fails it in CI (CI=true).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from waitroom import config
from waitroom.config import Config

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
ALL_DAY = {day: ("00:00", "23:59") for day in config.WEEKDAYS}
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")


def require_tool(name: str, package: str, *candidates: str) -> str:
    """Path of a system tool; skip (developer machine) or fail (CI) when it is missing."""
    for c in (name, *candidates):
        found = shutil.which(c) or (c if os.path.isabs(c) and os.path.exists(c) else None)
        if found:
            return found
    message = f"{name} is missing: apt-get install {package} (or: make sysdeps)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """Tests that run ``waitroom.cli.main`` in-process get its ``logging.basicConfig``: a root handler on
    that test's captured stderr, which pytest closes after the test. Left in place, every later log line of
    any thread (a controller's background threads) becomes a "Logging error" whose traceback is printed, and
    on Python 3.11.7 printing tracebacks in two threads at once can break an ``ast.parse`` elsewhere
    ("AST constructor recursion depth mismatch", CPython gh-106905). So the plain stream handlers a test
    added to the root logger are removed again, and its level restored (pytest's own capture handlers are
    its business: it adds and removes them around every phase)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if type(handler) is logging.StreamHandler and handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def mosquitto_bin() -> str:
    return require_tool("mosquitto", "mosquitto", "/usr/sbin/mosquitto")


@pytest.fixture(scope="session")
def broker(mosquitto_bin: str) -> Iterator[object]:
    """A real mosquitto with the project's local configuration, for the whole session."""
    from mqtt_broker.local import Mosquitto

    with Mosquitto() as m:
        yield m


@pytest.fixture
def fresh_broker(mosquitto_bin: str) -> Iterator[object]:
    """A mosquitto of its own for tests that stop or restart the broker."""
    from mqtt_broker.local import Mosquitto

    with Mosquitto() as m:
        yield m


def midday_zone(now: float) -> str:
    """An IANA zone (Etc/GMT±N) in which ``now`` is between 11:30 and 12:30: a wall-clock test's slots hours
    before and after now, and the test itself, stay within the office's today at whatever hour the suite runs
    (CI runs at any hour; at 23:55 in Berlin a test would cross midnight and start a new day)."""
    utc_hour = (now % 86400) / 3600
    east = round(12 - utc_hour)  # -12 .. +12 hours east of UTC
    return "Etc/GMT" if east == 0 else f"Etc/GMT{-east:+d}"  # the Etc zones count west as positive


def office_config(
    port: int, office_id: str = "mitte", timezone: str | None = None, **updates: object
) -> Config:
    """The bundled example office, bound to a broker port (and a unique office id to isolate tests). Its
    time zone is ``timezone``, by default one in which it is about noon now (see midday_zone): tests on a fake
    clock that mean Berlin's hours say so."""
    import time

    cfg = config.load(config.EXAMPLE_CONFIG)
    # open all day, every day: these tests run on the wall clock at any hour
    office = cfg.office.model_copy(
        update={"id": office_id, "hours": ALL_DAY, "timezone": timezone or midday_zone(time.time())}
    )
    # nor does the automatic intake stop refuse tickets late in the evening (its own tests set it up)
    rules = cfg.steering.intake_stop.model_copy(update={"enabled": False})
    steering = cfg.steering.model_copy(update={"intake_stop": rules})
    return cfg.model_copy(
        update={
            "office": office,
            "broker": cfg.broker.model_copy(update={"port": port}),
            "steering": steering,
            **updates,
        }
    )


_office_counter = iter(range(1, 10**6))


@pytest.fixture
def cfg(broker: object) -> Config:
    """The example office on the session broker, with an office id of its own for each test."""
    return office_config(broker.port, office_id=f"t{next(_office_counter)}")


@pytest.fixture
def controller(cfg: Config, tmp_path: Path) -> Iterator[object]:
    from waitroom.service import ControllerService

    svc = ControllerService(cfg, str(tmp_path / "events.db"))
    assert svc.start(wait=10)
    yield svc
    svc.stop()


@pytest.fixture
def node(cfg: Config) -> Iterator[Callable[[str], object]]:
    """Factory for started node runtimes of the test's office: node('disp-1')."""
    from waitroom.node import NodeRuntime

    started: list[NodeRuntime] = []

    def make(node_id: str) -> NodeRuntime:
        rt = NodeRuntime(cfg, node_id)
        assert rt.start(wait=10)
        started.append(rt)
        return rt

    yield make
    for rt in started:
        rt.stop()


@pytest.fixture
def mock_pins() -> Iterator[object]:
    """gpiozero's mock pin factory, installed for the test and restored afterwards."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    old = Device.pin_factory
    Device.pin_factory = factory = MockFactory()
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = old
