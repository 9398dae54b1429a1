"""The validated-config cache of the nodes (waitroom/nodeconfig.py, issue 17).

Real files, real processes: the validating process is the real ``python -m waitroom.nodeconfig``, a node is
the real ``python -m waitroom node ROLE`` (it exits on a configuration error before it connects anywhere).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from edge.counter import node_pins
from edge.dispenser.options import load_options, resolve_pins
from ticket_printer.settings import load_settings
from waitroom import config, nodeconfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "var"
    monkeypatch.setenv("WAITROOM_DATA_DIR", str(folder))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return folder


@pytest.fixture
def office(tmp_path: Path) -> Path:
    path = tmp_path / "office.yaml"
    path.write_bytes(config.EXAMPLE_CONFIG.read_bytes())
    return path


def edit(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def cache_files(data: Path, node: str) -> list[Path]:
    return sorted((data / "cache").glob(f"node-{node}-*.json"))


def test_a_miss_writes_the_cache_and_the_records_hold_what_the_schema_validated(data: Path, office: Path):
    light = nodeconfig.load_for_node(str(office), "disp-1", "dispenser")
    full = config.load(office)
    node = full.node("disp-1")
    [written] = cache_files(data, "disp-1")
    assert light is not None and written.stat().st_size > 0
    assert light.office.name == full.office.name and light.office.tz == full.office.tz
    assert light.office.today(1_780_000_000) == full.office.today(1_780_000_000)
    assert light.office.opening(1_780_000_000) == full.office.opening(1_780_000_000)
    assert [s.id for s in light.services] == [s.id for s in full.services]
    assert [s.name.as_dict() for s in light.services] == [s.name.model_dump() for s in full.services]
    assert light.service("pass").name.get("en") == full.service("pass").name.get("en")
    assert [c.zone for c in light.counters] == [c.zone for c in full.counters]
    assert (light.broker.host, light.broker.port) == (full.broker.host, full.broker.port)
    assert light.role_of("disp-1") == full.role_of("disp-1")
    assert light.node("disp-1").services == node.services and light.node("disp-1").pins == node.pins
    options = load_options(light, light.node("disp-1"))
    assert options.languages == load_options(full, node).languages  # a tuple, as the model holds it
    assert {f: getattr(options, f) for f in options._fields} == load_options(full, node).model_dump()
    assert resolve_pins(light, light.node("disp-1")) == resolve_pins(full, node)
    settings = light.prepared["printer"]
    assert settings.width_dots == load_settings(full.printer).width_dots
    assert settings.model_copy(update={"backend": "file"}).backend == "file"
    with pytest.raises(AttributeError):
        settings.backend = "usb"  # frozen, as the model


def test_a_display_reads_its_settings_from_the_cache_with_the_schema_s_values_and_methods(
    data: Path, office: Path
):
    from displays import settings as ds
    from displays.node import load_settings as display_settings

    def change(d: dict) -> None:
        d["display"] = {
            "theme": "dark",
            "colors": {"accent": [0, 200, 0]},
            "rotate": 90,
            "languages": ["de", "tr"],
            "announce_missed_s": 15,
        }
        d["display"]["ticker"] = {"de": "Bitte Ausweis bereithalten", "en": "Please have your ID ready"}
        node = next(n for n in d["nodes"] if n["id"] == "display-1")
        node["options"] = {
            "voices": {"ar": "ar+m3"},
            "second_language": "en",
            "fonts": {"bold": "/x/Bold.ttf"},
        }

    edit(office, change)
    light = nodeconfig.load_for_node(str(office), "display-1", "display")
    full = config.load(office)
    want = ds.for_node(full, full.node("display-1"))
    got = display_settings(light, light.node("display-1"))
    assert type(got).__module__ == "waitroom.nodeconfig"  # a record, not the pydantic model
    assert {f: getattr(got, f) for f in got._fields if f != "fonts"} == want.model_dump(exclude={"fonts"})
    assert got.colours == want.colours and got.colours.accent == (0, 200, 0)
    assert (got.size, got.portrait) == (want.size, want.portrait) == ((1080, 1920), True)
    assert got.fonts.path("bold") == want.fonts.path("bold") and got.fonts.path("regular").is_absolute()
    for lang in ("de", "tr", "ar", "uk"):
        assert got.voice(lang) == want.voice(lang)
        assert got.ticker_text(lang) == want.ticker_text(lang)
        assert got.spoken_languages(lang) == want.spoken_languages(lang)
    assert got.screenshot_path() == want.screenshot_path()
    assert got.screenshot_interval(True) == want.screenshot_interval(True)


def test_a_display_with_a_bad_setting_exits_1_naming_the_key(data: Path, office: Path):
    edit(office, lambda d: d.update(display={"blink_s": -1}))
    proc = run_node(office, "display", "display-1")
    assert proc.returncode == 1
    assert "display.blink_s: Input should be greater than or equal to 0" in proc.stderr
    assert cache_files(data, "display-1") == []


def test_a_hit_reads_the_file_and_loads_no_pydantic(data: Path, office: Path):
    assert nodeconfig.load_for_node(str(office), "counter-1", "counter") is not None
    [written] = cache_files(data, "counter-1")
    before = written.stat()
    code = (
        "import sys; from waitroom import nodeconfig\n"
        f"cfg = nodeconfig.load_for_node({str(office)!r}, 'counter-1', 'counter')\n"
        "print(cfg.node('counter-1').counter, cfg.prepared['pins']['next'], 'pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["c1", str(node_pins(config.load(office).node("counter-1"))["next"]), "False"]
    after = written.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # read, not rebuilt


def test_a_changed_file_is_a_miss_and_replaces_the_old_cache(data: Path, office: Path):
    assert nodeconfig.load_for_node(str(office), "sb-1", "assist").office.name == "Bürgerbüro Mitte"
    [old] = cache_files(data, "sb-1")
    edit(office, lambda d: d["office"].update(name="Bürgerbüro Nord"))
    assert nodeconfig.load_for_node(str(office), "sb-1", "assist").office.name == "Bürgerbüro Nord"
    [new] = cache_files(data, "sb-1")
    assert new != old and not old.exists()


def test_a_damaged_cache_is_ignored_and_written_again(data: Path, office: Path, caplog):
    nodeconfig.load_for_node(str(office), "counter-1", "counter")
    [path] = cache_files(data, "counter-1")
    for damage in (b"{not json", b'{"format": 1, "key": "other"}', path.read_bytes()[:200]):
        path.write_bytes(damage)
        cfg = nodeconfig.load_for_node(str(office), "counter-1", "counter")
        assert cfg is not None and cfg.node("counter-1").counter == "c1"
        assert json.loads(path.read_bytes())["format"] == nodeconfig.FORMAT  # a whole file again
    assert "ignored the configuration cache" in caplog.text


def run_node(office: Path, role: str, node: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "waitroom", "node", role, "--config", str(office), "--node", node]
    return subprocess.run([*argv, "--pins", "mock"], capture_output=True, text=True, timeout=60)


def test_a_configuration_error_on_a_miss_names_the_key_and_the_node_exits_1(data: Path, office: Path):
    edit(office, lambda d: d["nodes"][0].setdefault("options", {}).update(lease_size=0))
    doc = yaml.safe_load(office.read_text(encoding="utf-8"))
    assert doc["nodes"][0]["id"] == "disp-1"
    proc = run_node(office, "dispenser", "disp-1")
    assert proc.returncode == 1
    assert "nodes[0].options.lease_size: Input should be greater than or equal to 1" in proc.stderr
    assert proc.stderr.startswith(f"{office}: 1 configuration error(s):")  # the file, not "dispenser:"
    assert cache_files(data, "disp-1") == []
    edit(office, lambda d: (d["nodes"][0]["options"].pop("lease_size"), d.update(printer={"width": 80})))
    proc = run_node(office, "dispenser", "disp-1")
    assert proc.returncode == 1 and "printer.width: unknown key" in proc.stderr


@pytest.mark.parametrize(
    ("role", "node", "change", "needle"),
    [
        ("dispenser", "disp-1", {"options": {"bogus": 1}}, "nodes[0].options.bogus: unknown option"),
        ("counter", "counter-2", {"options": {"next_guard_s": "x"}}, "nodes[3].options.next_guard_s:"),
        (
            "display",
            "display-1",
            {"options": {"volume": 5}},
            "nodes[1].options.volume",
        ),
    ],
)
def test_a_node_s_own_settings_are_named_by_their_file_as_check_config_names_them(
    data: Path, office: Path, role: str, node: str, change: dict, needle: str
):
    edit(office, lambda d: next(n for n in d["nodes"] if n["id"] == node).update(change))
    check = subprocess.run(
        [sys.executable, "-m", "waitroom", "check-config", str(office)], capture_output=True, text=True
    )
    proc = run_node(office, role, node)
    assert proc.returncode == check.returncode == 1
    assert proc.stderr.startswith(f"{office}: 1 configuration error(s):\n  {needle}"), proc.stderr
    assert check.stderr == proc.stderr


def test_a_node_validating_in_its_own_process_names_the_file_too(
    data: Path, office: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    """No validating process in time (a hung SD card): the node validates its options itself, and says the
    same, not "dispenser: 1 configuration error(s)"."""
    from waitroom import cli

    edit(office, lambda d: d["nodes"][0].update(options={"lease_size": 0}))
    monkeypatch.setattr(nodeconfig, "VALIDATE_TIMEOUT_S", 0.01)
    argv = ["node", "dispenser", "--config", str(office), "--node", "disp-1", "--pins", "mock"]
    args = cli.build_parser(core_only=True).parse_args(argv)
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert f"{office}: 1 configuration error(s):\n  nodes[0].options.lease_size:" in err, err
    assert "dispenser: 1 configuration error(s)" not in err


def test_a_schema_error_is_the_same_as_check_config(data: Path, office: Path):
    edit(office, lambda d: next(n for n in d["nodes"] if n["id"] == "counter-1").update(counter="c99"))
    check = subprocess.run(
        [sys.executable, "-m", "waitroom", "check-config", str(office)], capture_output=True, text=True
    )
    proc = run_node(office, "counter", "counter-1")
    assert proc.returncode == check.returncode == 1
    assert "counter: unknown counter 'c99'" in check.stderr
    assert check.stderr.strip() in proc.stderr
    office.write_bytes(config.EXAMPLE_CONFIG.read_bytes())  # valid again: the node and its role
    proc = run_node(office, "counter", "sb-1")
    assert proc.returncode == 1 and "node sb-1 is a assist, not a counter" in proc.stderr
    proc = run_node(office, "counter", "nobody")
    assert proc.returncode == 1 and "no node 'nobody'" in proc.stderr


def test_nodes_starting_together_with_one_file_all_get_their_configuration(data: Path, office: Path):
    jobs = [("counter-1", "counter"), ("sb-1", "assist"), ("disp-1", "dispenser")] * 3

    def build(job: tuple[str, str]) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "waitroom.nodeconfig", str(office), *job]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=os.environ)

    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(build, jobs))
    assert [r.returncode for r in results] == [0] * len(jobs), [r.stderr for r in results]
    for node, role in set(jobs):
        [path] = cache_files(data, node)
        assert nodeconfig.read(path, None).node(node).role == role
    assert not list((data / "cache").glob(".*.tmp"))  # no half-written file left


def test_a_read_only_data_directory_falls_back_to_validating_in_the_node(data: Path, office: Path):
    data.mkdir(parents=True)
    (data / "cache").write_text("a file where the folder would be", encoding="utf-8")
    assert nodeconfig.load_for_node(str(office), "counter-1", "counter") is None  # cli: config.load


def test_a_validating_process_that_does_not_finish_in_time_falls_back_to_the_node(
    data: Path, office: Path, monkeypatch: pytest.MonkeyPatch, caplog
):
    """A stalled validating process (a hung SD card) does not keep the node from starting: after the timeout
    the node validates in its own process (None)."""
    monkeypatch.setattr(nodeconfig, "VALIDATE_TIMEOUT_S", 0.01)  # a real process cannot start that fast
    with caplog.at_level("WARNING", logger="waitroom.nodeconfig"):
        assert nodeconfig.load_for_node(str(office), "counter-1", "counter") is None
    assert "validates it itself" in caplog.text
    assert cache_files(data, "counter-1") == []  # the process was stopped long before it could write
