"""Import boundaries: the import-linter contracts hold, and a real node process loads only what it uses.

The contracts (``[tool.importlinter]`` in pyproject.toml) are checked statically; the node tests start
the real ``waitroom node ROLE`` code path (``waitroom.cli.main``) against a real mosquitto, let it run, and
look at what the process imported.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

import waitroom
from waitroom import config

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CONTRACTS = {c["id"]: c for c in PYPROJECT["tool"]["importlinter"]["contracts"]}

# Never in a node process: the web app, the simulator, the controller and the libraries only they use.
NEVER_IN_A_NODE = (
    "flask",
    "werkzeug",
    "jinja2",
    "gunicorn",
    "gevent",
    "flask_limiter",
    "amqtt",
    "sklearn",
    "waitroom.web",
    "waitroom.sim",
    "waitroom.city.web",
    "waitroom.controller",
    "waitroom.service",
    "waitroom.forecast",
)


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.fail("lint-imports is missing: pip install -e '.[dev]' (import-linter)")
    proc = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in proc.stdout


def test_core_contract_names_every_module_but_the_web_app() -> None:
    """A new module of waitroom is covered by "nothing below waitroom.web imports it" only when listed."""
    listed = set(CONTRACTS["core-without-web"]["source_modules"])
    modules = {
        f"waitroom.{m.name}" for m in pkgutil.iter_modules(waitroom.__path__) if not m.name.startswith("__")
    } - {"waitroom.web"}
    assert modules - listed == set(), "add these to the core-without-web contract in pyproject.toml"
    assert "waitroom.web" not in listed


def test_node_contract_forbids_the_web_app_and_the_simulator() -> None:
    c = CONTRACTS["nodes-lean"]
    assert {"edge", "displays", "ticket_printer"} <= set(c["source_modules"])
    assert {"waitroom.web", "waitroom.sim", "flask"} <= set(c["forbidden_modules"])


def test_pins_and_config_do_not_import_each_other() -> None:
    """The old circle: waitroom.config called firmware_config.pins, which imported waitroom.config back."""
    text = (ROOT / "firmware_config" / "pins.py").read_text(encoding="utf-8")
    assert "waitroom.config" not in text.replace("``waitroom.config", "")


# A node run through the real command line, stopped by SIGINT after it has started; prints what it imported.
RUN_NODE = """
import json, os, signal, sys, threading
from waitroom import cli

argv = sys.argv[1:]
orig = cli.wait_for_signal

def wait_then_stop(alive=None):
    threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    orig(alive)

cli.wait_for_signal = wait_then_stop
code = cli.main(argv)
print("MODULES " + json.dumps(sorted(sys.modules)), flush=True)
sys.exit(code)
"""


@pytest.fixture
def office_file(broker: object, tmp_path: Path) -> Path:
    data = yaml.safe_load(config.EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    data["office"]["id"] = "imports"
    data.setdefault("broker", {}).update(host="127.0.0.1", port=broker.port)
    path = tmp_path / "office.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("role", "node_id"),
    [("counter", "counter-1"), ("assist", "sb-1"), ("dispenser", "disp-1"), ("display", "display-1")],
)
def test_a_running_node_loads_no_web_app_no_simulator(
    role: str, node_id: str, office_file: Path, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "WAITROOM_DATA_DIR": str(tmp_path / "var"),
        "SDL_VIDEODRIVER": "dummy",
        "SDL_AUDIODRIVER": "dummy",
        "PYGAME_HIDE_SUPPORT_PROMPT": "1",
    }
    argv = ["node", role, "--config", str(office_file), "--node", node_id, "--pins", "mock"]
    proc = subprocess.run(
        [sys.executable, "-c", RUN_NODE, *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{role} node {node_id} running" in proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("MODULES "))
    modules = set(json.loads(line.removeprefix("MODULES ")))
    loaded = sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in NEVER_IN_A_NODE))
    assert loaded == []
    assert "babel" not in modules  # texts come from the compiled catalogs (stdlib gettext)
    # every node starts from its validated-config cache (issue 17)
    assert "pydantic" not in modules
    assert "waitroom.config" not in modules
    assert "displays.settings" not in modules
    assert "firmware_config.pins" not in modules
    if role == "dispenser":
        # python-escpos' facts of the profile come from the cache: neither its printer class (python-barcode,
        # qrcode, Pillow's font engine) nor its printer database (PyYAML) is loaded
        for heavy in ("escpos.escpos", "escpos.capabilities", "escpos.printer", "barcode", "qrcode", "yaml"):
            assert heavy not in modules, heavy
        assert "PIL.ImageFont" not in modules
    if role == "display":
        assert "gpiozero" not in modules  # a display has no pins
        assert "pygame" in modules
        assert "numpy" not in modules  # pygame is imported without it (surfarray and sndarray are unused)
