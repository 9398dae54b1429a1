"""Configuration: the schema, the cross-references, and `waitroom check-config`."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from waitroom import config
from waitroom.errors import ConfigError


def example() -> dict:
    return yaml.safe_load(config.EXAMPLE_CONFIG.read_text())


def errors_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        config.parse(data)
    return exc.value.errors


def test_example_office_is_valid():
    cfg = config.load(config.EXAMPLE_CONFIG)
    assert cfg.office.id == "mitte" and len(cfg.services) == 4 and len(cfg.counters) == 5
    assert cfg.role_of("counter-1").value == "counter" and cfg.role_of("nobody") is None


def test_unknown_keys_are_errors_with_their_path():
    data = example()
    data["services"][1]["colour"] = "red"
    data["office"]["opening"] = {}
    errs = errors_of(data)
    assert any(e.startswith("services[1].colour: unknown key") for e in errs)
    assert any(e.startswith("office.opening: unknown key") for e in errs)


def test_broken_references_are_all_listed():
    data = example()
    data["counters"][0]["services"].append("passport")
    data["nodes"].append({"id": "counter-9", "role": "counter", "counter": "c9"})
    data["nodes"].append({"id": "disp-2", "role": "dispenser", "services": ["mars"]})
    data["nodes"].append({"id": "disp-1", "role": "display"})
    errs = errors_of(data)
    assert (
        "counters[0].services[2]: unknown service 'passport' (known: fuehrerschein, melde, pass, sonstiges)"
        in errs
    )
    assert any(e.startswith("nodes[8].counter: unknown counter 'c9'") for e in errs)
    assert "nodes[9].services[0]: unknown service 'mars'" in errs
    assert "nodes[10].id: duplicate id 'disp-1'" in errs
    assert len(errs) == 4


@pytest.mark.parametrize(
    "path,value,needle",
    [
        (("office", "id"), "Mitte!", "office.id"),
        (("office", "timezone"), "Mars/Olympus", "office.timezone"),
        (("office", "timezone"), "Europe", "office.timezone"),  # a folder of the zone database
        (("office", "hours"), {"mon": ["18:00", "08:00"]}, "office.hours.mon"),
        (("office", "hours"), {"mon": ["8", "18:00"]}, "office.hours.mon"),
        (("services",), [], "services"),
        (("broker", "port"), 70000, "broker.port"),
    ],
)
def test_bad_values_name_the_key(path, value, needle):
    data = example()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert any(e.startswith(needle) for e in errors_of(data)), errors_of(data)


def test_walk_in_numbers_must_start_below_the_offline_numbers():
    """``ticket_start`` at or above ``offline_numbers_from`` was accepted, and the controller then answered
    every ticket.issue ``numbers_used_up`` from the first ticket of the day."""
    data = example()
    data["office"].update(ticket_start=500, offline_numbers_from=400)
    assert errors_of(data) == [
        "office.ticket_start: 500 leaves no walk-in number below office.offline_numbers_from (400); "
        "make it smaller"
    ]
    data["office"].update(ticket_start=399)
    assert config.parse(data).office.ticket_start == 399


def test_a_pin_switched_off_with_yaml_s_off_or_no_is_an_error_not_gpio_0(tmp_path):
    """``pins: {buzzer: off}`` unquoted is YAML's false, which the pin type took as GPIO 0 (true as GPIO 1):
    check-config said OK and the dispenser drove its buzzer on GPIO 0 (the HAT's EEPROM pin). Now it is one
    error naming the key and what to write; what is neither a number nor a name is one error, not one per
    member of the pin type ("pins.button1.int: ..., pins.button1.str: ...")."""
    from edge.dispenser.options import resolve_pins

    text = config.EXAMPLE_CONFIG.read_text(encoding="utf-8")
    wiring = "options: {languages: [de, en, tr, ar, uk, ru, de-LS]}"
    assert text.count(wiring) == 1
    office = tmp_path / "office.yaml"
    office.write_text(text.replace(wiring, "pins: {buzzer: off, lang: no, button2: [6]}"), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "waitroom.cli", "check-config", str(office)], capture_output=True, text=True
    )
    assert out.returncode == 1, out.stdout
    assert out.stderr.splitlines()[1:] == [
        "  nodes[0].pins.buzzer: false is not a pin (YAML reads an unquoted off, no, false as false, and on, "
        "yes, true as true): write none to leave the part out, or its GPIO number",
        "  nodes[0].pins.lang: false is not a pin (YAML reads an unquoted off, no, false as false, and on, "
        "yes, true as true): write none to leave the part out, or its GPIO number",
        "  nodes[0].pins.button2: [6] is not a pin: a BCM GPIO number (17), GPIO17, BOARD11, or none",
    ]
    office.write_text(text.replace(wiring, "pins: {buzzer: none, button2: 6.0, lang: on}"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.pins\.lang: true is not a pin"):
        config.load(office)
    office.write_text(text.replace(wiring, "pins: {buzzer: none, button2: 6.0}"), encoding="utf-8")
    cfg = config.load(office)
    pins = resolve_pins(cfg, cfg.node("disp-1"))
    assert pins["buzzer"] is None and pins["button2"] == 6


def test_a_display_setting_is_named_where_the_file_has_it_once():
    """A bad key of the office's ``display:`` section was reported once for the section and once more for
    every display node with options, as "display (with nodes[display-1].options).fps"; a node's own option
    under that name too, not as the key path of the file."""
    from waitroom.cli import check_sections

    data = example()
    data["nodes"][1]["options"] = {"recent_calls": 5, "blink_s": 999}
    data["nodes"].append({"id": "display-2", "role": "display", "options": {"blink_s": 4}})
    data["display"] = {"volume": 5, "fps": 0}
    assert sorted(check_sections(config.parse(data))) == [
        "display.fps: Input should be greater than or equal to 2",
        "display.volume: Input should be less than or equal to 1",
        "nodes[1].options.blink_s: Input should be less than or equal to 120",
    ]


def test_duplicate_prefix_is_an_error():
    data = example()
    data["services"][1]["prefix"] = "A"
    assert "services[1].prefix: duplicate prefix 'A'" in errors_of(data)


def test_check_config_command(tmp_path):
    good = subprocess.run(
        [sys.executable, "-m", "waitroom.cli", "check-config", str(config.EXAMPLE_CONFIG)],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0 and "OK" in good.stdout
    data = example()
    data["counters"][2]["services"] = ["nix"]
    bad_file = tmp_path / "office.yaml"
    bad_file.write_text(yaml.safe_dump(data))
    bad = subprocess.run(
        [sys.executable, "-m", "waitroom.cli", "check-config", str(bad_file)], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert "counters[2].services[0]: unknown service 'nix'" in bad.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "waitroom.cli", "check-config", str(tmp_path / "none.yaml")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("office: [unclosed")
    out = subprocess.run(
        [sys.executable, "-m", "waitroom.cli", "check-config", str(broken)], capture_output=True, text=True
    )
    assert out.returncode == 1 and "(yaml)" in out.stderr


TWICE_IN_ONE_LINE = """\
nodes:
  - {id: disp-1, role: dispenser, services: [pass], services: [melde]}
"""


@pytest.mark.parametrize("command", [["check-config", "{f}"], ["city", "check-config", "{f}"]])
def test_a_key_written_twice_is_an_error_naming_its_line_not_a_section_silently_lost(tmp_path, command):
    """YAML keeps the second of two equal keys and drops the first without a word: a second ``display:``
    added at the end of the file threw away the first one's settings, and check-config said OK."""
    text = config.EXAMPLE_CONFIG.read_text(encoding="utf-8")
    office = tmp_path / "office.yaml"
    office.write_text(text + "\ndisplay: {volume: 0.4}\ndisplay: {volume: 0.9}\n", encoding="utf-8")
    line = text.count("\n") + 3
    args = [a.replace("{f}", str(office)) for a in command]
    out = subprocess.run([sys.executable, "-m", "waitroom.cli", *args], capture_output=True, text=True)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith(f"{office}: 1 configuration error(s):"), out.stderr
    assert f"(yaml): line {line}: key 'display' appears twice in one section (also on line {line - 1})" in (
        out.stderr
    )
    with pytest.raises(ConfigError, match=r"line 2: key 'services' appears twice .* \(also on line 2\)"):
        config.loads(TWICE_IN_ONE_LINE)  # in a flow mapping of one line too


def test_yaml_merge_keys_may_still_be_overridden():
    """``<<: *base`` followed by one of base's keys is an override, not a key written twice."""
    assert config.yaml_load("a: &b {x: 1, y: 2}\nc:\n  <<: *b\n  x: 3\n") == {
        "a": {"x": 1, "y": 2},
        "c": {"x": 3, "y": 2},
    }


def test_times_of_day_as_people_write_them():
    """Unquoted 16:00 is the time, not YAML 1.1's base-60 number 960, and 7:30 is 07:30; what is no time of
    day says so in words, at its key (pydantic would print its regular expression)."""
    text = config.EXAMPLE_CONFIG.read_text().replace('["08:00", "16:00"]', "[7:30, 16:00]")
    assert "[7:30, 16:00]" in text
    cfg = config.loads(text)
    assert cfg.office.hours["mon"] == ("07:30", "16:00")
    with pytest.raises(ConfigError) as exc:
        config.loads(text.replace("[7:30, 16:00]", '["8.00", 16:00]', 1))
    assert exc.value.errors == [
        "office.hours.mon[0]: '8.00' is not a time of day as HH:MM, 00:00 to 23:59, e.g. \"07:30\""
    ]
    data = example()
    data["counters"][0]["id"] = "Schalter 1"
    assert any(
        e.startswith("counters[0].id: 'Schalter 1' is not an id of lower-case letters")
        for e in errors_of(data)
    )


def test_opening_hours(tmp_path):
    import datetime as dt
    from zoneinfo import ZoneInfo

    o = config.load(config.EXAMPLE_CONFIG).office
    wed = dt.datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    _opened, closed = o.opening(wed.timestamp())
    assert dt.datetime.fromtimestamp(closed, ZoneInfo("Europe/Berlin")).hour == 13
    assert o.opening((wed + dt.timedelta(days=4)).timestamp()) is None  # Sunday
    assert o.today(wed.timestamp()) == "2026-11-25"


def test_configuration_reference_is_generated_from_the_schema():
    from waitroom import config_doc

    assert config_doc.DOC.read_text(encoding="utf-8") == config_doc.generate(), (
        "docs/configuration.md is stale: run python -m waitroom.config_doc"
    )


@pytest.mark.parametrize(
    "command",
    [
        ["check-config", "{f}"],
        ["controller", "--config", "{f}"],
        ["node", "dispenser", "--config", "{f}", "--node", "disp-1"],
        ["simulate", "{f}"],
        ["city", "check-config", "{f}"],
    ],
    ids=lambda c: c[0] if c[0] != "city" else "city",
)
def test_a_file_that_is_no_utf8_text_or_nested_too_deeply_is_a_config_error(tmp_path, command):
    """Not UTF-8 (a file saved as UTF-16 or Latin-1) and YAML nested deeper than the parser's recursion: one
    clear message naming the file and exit code 1 (both were a traceback)."""
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("office: {name: Bürgerbüro}\n".encode("latin-1"))
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 50_000 + "]" * 50_000 + "\n")
    for path, message in ((latin1, "not UTF-8 text (byte 16)"), (deep, "nested too deeply")):
        args = [a.replace("{f}", str(path)) for a in command]
        out = subprocess.run(
            [sys.executable, "-m", "waitroom.cli", *args], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 1, (args, out.stderr[-2000:])
        assert "Traceback" not in out.stderr, out.stderr[-2000:]
        assert str(path) in out.stderr and message in out.stderr, out.stderr
