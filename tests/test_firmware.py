"""firmware_config: pin maps (schema, merge with the office config, check-config errors by path), the boot
config fragments (every setting documented) and the printer udev rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from firmware_config import pins
from waitroom import config
from waitroom.cli import main
from waitroom.errors import ConfigError

FW = Path(pins.__file__).parent


def example(**node_updates: dict) -> dict:
    data = yaml.safe_load(config.EXAMPLE_CONFIG.read_text())
    for node in data["nodes"]:
        node.update(node_updates.get(node["id"], {}))
    return data


def test_every_pin_map_loads_and_has_unique_gpios() -> None:
    maps = pins.all_pinmaps()
    assert {"counter", "assist"} <= set(maps)
    for role, pinmap in maps.items():
        for rev in pinmap.revisions.values():
            gpios = [pins.bcm_number(p) for p in rev.all_pins().values()]
            assert len(gpios) == len(set(gpios)), role
    counter = maps["counter"].revision()
    assert counter.buttons["next"] == 17 and "status_green" in counter.leds
    if "dispenser" in maps:  # the dispenser's flat map (name: gpio) is read as one revision
        assert maps["dispenser"].revision().all_pins()["button1"] == 5


@pytest.mark.parametrize(
    ("pin", "bcm"), [(17, 17), ("17", 17), ("GPIO17", 17), ("bcm4", 4), ("BOARD11", 17), ("J8:40", 21)]
)
def test_pin_names(pin: int | str, bcm: int) -> None:
    assert pins.bcm_number(pin) == bcm


@pytest.mark.parametrize(
    ("pin", "why"),
    [
        (28, "not on the 40-pin header"),
        ("BOARD1", "power or ground"),
        ("GPIOX", "is not a pin"),
        (True, "is not a pin"),
    ],
)
def test_bad_pins(pin: object, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        pins.bcm_number(pin)  # type: ignore[arg-type]


def test_node_pins_override_the_role_map() -> None:
    cfg = config.parse(
        example(
            **{
                "counter-1": {"pins": {"next": "GPIO5", "status_red": 12}},
                "counter-2": {"options": {"hardware": "mini"}},
            }
        )
    )
    merged = pins.resolve(cfg.node("counter-1"))
    assert merged["next"] == "GPIO5" and merged["recall"] == 27 and merged["status_red"] == 12
    assert pins.resolve(cfg.node("counter-2")) == {"next": 17, "status_green": 6}
    assert pins.resolve(cfg.node("display-1")) == {}
    off = config.parse(example(**{"counter-1": {"pins": {"buzzer": "none"}}}))
    assert pins.resolve(off.node("counter-1"))["buzzer"] == "none"


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        ({"counter-1": {"pins": {"nxt": 17}}}, "nodes[2].pins.nxt: no such pin in the counter pin map"),
        ({"counter-1": {"pins": {"next": 27}}}, "GPIO 27 is already used by"),
        ({"counter-1": {"pins": {"next": 99}}}, "nodes[2].pins.next: GPIO 99 is not on the 40-pin header"),
        ({"counter-1": {"pins": {"next": "nine"}}}, "nodes[2].pins.next: 'nine' is not a pin"),
        (
            {"sb-1": {"options": {"hardware": "v9"}}},
            "nodes[6].options.hardware: unknown revision 'v9' (known: v1)",
        ),
        (
            {"display-1": {"options": {"hardware": "v1"}}},
            "nodes[1].options.hardware: role display has no pin map",
        ),
    ],
)
def test_check_config_names_pin_errors(
    updates: dict, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError) as err:
        config.parse(example(**updates))
    assert any(message in e for e in err.value.errors), err.value.errors
    f = tmp_path / "office.yaml"
    f.write_text(yaml.safe_dump(example(**updates), allow_unicode=True))
    assert main(["check-config", str(f)]) == 1
    assert message in capsys.readouterr().err


def test_a_broken_pin_map_file_is_reported_by_path(tmp_path: Path) -> None:
    bad = {
        "role": "counter",
        "default": "v1",
        "revisions": {"v1": {"buttons": {"next": 17}, "leds": {"lamp": 17}}, "v2": {"buttons": {"X": 3}}},
    }
    (tmp_path / "counter.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as err:
        pins.load_file(tmp_path / "counter.yaml")
    text = "\n".join(err.value.errors)
    assert "revisions.v1" in text and "both on GPIO 17" in text
    assert "revisions.v2.buttons.X" in text
    (tmp_path / "assist.yaml").write_text(yaml.safe_dump({**bad, "revisions": {"v1": {}}, "role": "counter"}))
    with pytest.raises(ConfigError, match="does not match the file name"):
        pins.load_file(tmp_path / "assist.yaml")


def test_a_number_display_needs_its_segments_and_digits(tmp_path: Path) -> None:
    segs = {f"seg_{c}": n for c, n in zip("abcdefg", (4, 12, 16, 18, 19, 20, 21), strict=True)}
    ok = {"buttons": {"next": 17}, "display": {**segs, "digit_1": 25, "digit_2": 8}}
    no_c = {**segs, "digit_1": 25}
    del no_c["seg_c"]
    bad = {
        "role": "counter",
        "default": "ok",
        "revisions": {
            "ok": ok,
            "no_c": {"buttons": {"next": 17}, "display": no_c},
            "no_digit": {"buttons": {"next": 17}, "display": segs},
            "odd": {"buttons": {"next": 17}, "display": {**segs, "digit_1": 25, "colon": 8}},
        },
    }
    (tmp_path / "counter.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as err:
        pins.load_file(tmp_path / "counter.yaml")
    text = "\n".join(err.value.errors)
    assert "revisions.no_c" in text and "seg_c missing" in text
    assert "revisions.no_digit" in text and "no digit_1" in text
    assert "revisions.odd" in text and "colon unknown" in text
    assert "revisions.ok" not in text


def test_check_config_refuses_a_letter_the_number_display_cannot_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = example(**{"counter-1": {"options": {"hardware": "display"}}})
    data["services"][1]["prefix"] = "M"
    f = tmp_path / "office.yaml"
    f.write_text(yaml.safe_dump(data, allow_unicode=True))
    assert main(["check-config", str(f)]) == 1
    err = capsys.readouterr().err
    assert "services[1].prefix: the number display of counter node counter-1 cannot show the letter 'M'" in (
        err
    )
    data["nodes"][2]["options"] = {}  # without a display, M is a fine letter
    f.write_text(yaml.safe_dump(data, allow_unicode=True))
    assert main(["check-config", str(f)]) == 0


def settings(path: Path) -> list[tuple[str, str, int]]:
    """(key, value, line number) of a config.txt fragment; only [all] sections and key=value lines allowed."""
    out = []
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip() or line.startswith("#") or line == "[all]":
            continue
        m = re.fullmatch(r"([a-z_0-9]+)=(\S+)", line)
        assert m, f"{path.name}:{i + 1}: not a config.txt setting: {line!r}"
        out.append((m.group(1), m.group(2), i))
    return out


@pytest.mark.parametrize("name", ["common.txt", "display.txt"])
def test_boot_fragments_are_documented_settings(name: str) -> None:
    path = FW / "boot" / name
    lines = path.read_text().splitlines()
    assert "[all]" in lines, "a fragment resets earlier [pi4]-style filters"
    for _key, _value, i in settings(path):
        above = [ln for ln in lines[:i] if ln.strip()]
        assert above[-1].startswith("#") or "=" in above[-1], f"{name}:{i + 1}: setting without a comment"
        block_start = max(j for j in range(i + 1) if not lines[j].strip() or j == 0 or lines[j] == "[all]")
        assert any(lines[j].startswith("#") for j in range(block_start, i)), f"{name}:{i + 1}: undocumented"


def test_watchdog_on_for_every_node_and_display_settings() -> None:
    common = {k: v for k, v, _ in settings(FW / "boot" / "common.txt")}
    display = {k: v for k, v, _ in settings(FW / "boot" / "display.txt")}
    assert common["dtparam"] == "watchdog=on"
    assert display["disable_overscan"] == "1" and display["hdmi_force_hotplug"] == "1"
    assert ("dtparam", "audio=on") in {(k, v) for k, v, _ in settings(FW / "boot" / "display.txt")}
    cmdline = [
        ln
        for ln in (FW / "boot" / "cmdline-display.txt").read_text().splitlines()
        if ln and not ln.startswith("#")
    ]
    assert "consoleblank=0" in cmdline and all(" " not in p for p in cmdline)
    wd = (FW / "systemd" / "watchdog.conf").read_text()
    assert "[Manager]" in wd and re.search(r"^RuntimeWatchdogSec=\d+", wd, re.M)


def test_printer_udev_rule_grants_the_service_group() -> None:
    rules = [
        ln
        for ln in (FW / "udev" / "99-waitroom-printer.rules").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert len(rules) >= 3
    for rule in rules:
        pairs = [p.strip() for p in rule.split(",")]
        for pair in pairs:
            assert re.fullmatch(r'[A-Z_]+(\{[A-Za-z_]+\})?(==|=|\+=)"[^"]*"', pair), (
                f"bad udev syntax: {pair}"
            )
        assert any("==" in p for p in pairs), "every rule matches something"
        assert 'GROUP="waitroom"' in pairs and 'MODE="0660"' in pairs
    assert any('ENV{ID_USB_INTERFACES}=="*:0701*"' in r for r in rules), "printer class 07 subclass 01"
