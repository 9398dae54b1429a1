"""End to end in a real headless chromium: a 115 agent books an appointment on the booking page
(`waitroom web` under gunicorn, the real controller and broker), the citizen checks in at a dispenser node on
mock pins by scanning the confirmation's QR URL, and a counter calls them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_tool
from tests.test_dispenser import files, make, with_dispenser  # noqa: F401 (make is a fixture)
from tests.web_helpers import PASSWORD, log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture
def cfg(broker):
    """The test office, slots every 5 minutes from now on (lead 0): the first one is callable at once."""
    from tests.conftest import _office_counter, office_config

    base = office_config(broker.port, office_id=f"ap{next(_office_counter)}")
    appts = base.appointments.model_copy(update={"lead_min": 0, "slot_min": 5})
    return base.model_copy(update={"appointments": appts})


@pytest.fixture
def web_server(cfg, controller, tmp_path):
    from mqtt_broker.local import free_port, wait_for_port
    from waitroom.web.users import UserStore

    conf = tmp_path / "office.yaml"
    conf.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), allow_unicode=True))
    store = UserStore(tmp_path / "web-users.db")
    store.add("agent115", PASSWORD, "booking")
    store.close()
    port = free_port()
    env = {**os.environ, "WAITROOM_SECRET_KEY": "e2e-secret-key-0123456789abcdef"}
    cmd = [sys.executable, "-m", "waitroom.cli", "web", "--config", str(conf), "--data-dir", str(tmp_path)]
    cmd += ["--bind", f"127.0.0.1:{port}", "--threads", "8"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
        art = Path(__file__).resolve().parent.parent / "test-artifacts"
        art.mkdir(exist_ok=True)
        (art / "e2e-booking-server.log").write_bytes(out)


@pytest.fixture
def browser():
    chromium = require_tool("chromium", "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_book_in_the_browser_check_in_at_the_dispenser_and_call(
    cfg,
    web_server,
    browser,
    controller,
    node,
    make,  # noqa: F811 (the fixture imported above)
    tmp_path,
    artifacts,
):
    page = browser.new_page(locale="de-DE")
    log_in(page, f"{web_server}/booking/", "agent115", "**/booking/")
    page.select_option("#service", "pass")
    page.get_by_role("button", name="Freie Termine zeigen").click()
    page.wait_for_selector("#first-slot")
    day = page.inner_text("#day-h ~ ul [aria-current]")
    page.check("#first-slot")
    page.click("#book")
    page.wait_for_selector("#booking-code")
    page.screenshot(path=str(artifacts / "e2e-booking-confirmation.png"), full_page=True)
    shown = page.inner_text("#booking-code")
    code = shown.replace("-", "")
    assert page.inner_text("#booking-state") == "gebucht" and "Personalausweis" in page.inner_text(
        "#booking-service"
    )
    assert "QR" in page.get_attribute("img.qr", "alt")
    a = controller.office.state.appointments[code]
    assert (
        a.service == "pass"
        and a.counter is not None
        and cfg.office.today(a.slot) == cfg.office.today(controller.office.clock())
    ), day

    # the citizen scans the confirmation's QR code at the dispenser (the URL ends in the code)
    folder = tmp_path / "raw"
    folder.mkdir()
    d = make(with_dispenser(cfg, {"backend": "file", "file": {"path": str(folder)}}, press_interval_s=0))
    out = d._checkin(f"{cfg.office.public_url}/a/{code}")
    assert out.kind == "printed", out
    raw = files(folder)[-1].read_bytes()
    assert b"Termin: " in raw and out.number.encode() in raw
    t = next(t for t in controller.office.state.tickets.values() if t.number == out.number)
    assert t.appointment == a.slot

    # and counter 1 calls them (nobody else waits; the slot is within the early window)
    call = node("counter-1").request("counter.call_next", {"counter": "c1"})["call"]
    assert call["ticket"] == out.number
    page.reload()
    assert page.inner_text("#booking-state") == "eingecheckt"
