"""The dispenser's languages: the configured list, the language button, the choice on the ticket."""

from __future__ import annotations

import time

import pytest

from edge.dispenser import Dispenser, load_options
from waitroom.config import Config
from waitroom.errors import ConfigError


def with_options(cfg: Config, **options: object) -> Config:
    nodes = [
        n.model_copy(update={"options": {**n.options, **options}}) if n.id == "disp-1" else n
        for n in cfg.nodes
    ]
    return cfg.model_copy(update={"nodes": nodes})


def test_dispenser_languages_are_validated(cfg):
    good = with_options(cfg, languages=["de", "tr", "ar", "de-x-ls"])
    assert load_options(good, good.node("disp-1")).languages == ("de", "tr", "ar", "de-LS")
    for bad, match in (
        (["de", "fr"], r"options\.languages.*unknown language 'fr'"),
        (["de", "de"], r"options\.languages.*twice"),
        ([], r"options\.languages"),
    ):
        c = with_options(cfg, languages=bad)
        with pytest.raises(ConfigError, match=match):
            load_options(c, c.node("disp-1"))


def test_language_button_steps_through_the_configured_languages(cfg, node, mock_pins, tmp_path, monkeypatch):
    from waitroom.node import NodeRuntime

    monkeypatch.setenv("WAITROOM_DATA_DIR", str(tmp_path / "var"))
    c = with_options(cfg, languages=["de", "tr", "ar"], lang_window_s=1.0)
    rt = NodeRuntime(c, "disp-1")
    assert rt.start(wait=10)
    d = Dispenser(rt, c, c.node("disp-1"), pins=mock_pins)
    d.start()
    try:
        assert d.chosen_lang() == "de" and d.lang_led is not None
        seen = []
        for _ in range(4):
            pin = d.buttons["lang"].pin
            pin.drive_low()
            time.sleep(0.06)
            pin.drive_high()
            time.sleep(0.06)
            seen.append((d.chosen_lang(), d.lang_led.is_lit))
        assert [s[0] for s in seen] == ["tr", "ar", "de", "tr"]
        assert [s[1] for s in seen] == [True, True, False, True]  # lit while not the default
        data = d._data({"number": "A001", "id": "abc"}, d.services[0], d.chosen_lang())
        assert data.lang == "tr"
        # the QR code opens the status page in that language, not in the phone's (README: the choice travels)
        assert data.url == f"{c.office.public_url.rstrip('/')}/t/abc?lang=tr"
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and d.chosen_lang() != "de":
            time.sleep(0.05)
        assert d.chosen_lang() == "de"  # the choice holds lang_window_s, for check-ins too
    finally:
        d.stop()
        rt.stop()
