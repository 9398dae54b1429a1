"""The reception desk (Empfang): staff issue a number for a citizen (service, priority, language) or check in
a booking code, with Flask's test client against a real mosquitto and the real controller."""

from __future__ import annotations

import html
import re
import time

from tests.test_a11y import browser, reception_ticket, server  # noqa: F401 (fixtures)
from tests.test_a11y import login as a11y_login
from tests.test_appointments_web import app, client  # noqa: F401 (the same app, with a booking-only account)
from tests.test_web import post
from tests.web_helpers import csrf_token, wait_for

FORM_RE = re.compile(r'name="form" value="([^"]+)"')


def form_id(c) -> str:
    m = FORM_RE.search(c.get("/reception").get_data(as_text=True))
    assert m, "no request id in the reception form"
    return m.group(1)


def issued(controller, **match):
    return [
        t
        for t in controller.office.state.tickets.values()
        if all(getattr(t, k) == v for k, v in match.items())
    ]


def test_staff_issue_a_priority_ticket_in_turkish(app, controller, cfg):  # noqa: F811
    staff = client(app, "anna")
    page = staff.get("/reception").get_data(as_text=True)
    name = cfg.service("melde").name.de
    assert name in page and 'name="priority"' in page
    assert '<option value="tr" lang="tr" dir="ltr">Türkçe</option>' in page  # the language in its own name
    r = post(
        staff,
        "/reception",
        {"form": form_id(staff), "service": "melde", "priority": "1", "citizen_lang": "tr"},
    )
    assert r.status_code == 302, r.get_data(as_text=True)
    tid = r.headers["Location"].rsplit("/", 1)[1]
    t = controller.office.state.tickets[tid]
    assert (t.service, t.priority, t.lang, t.state) == ("melde", True, "tr", "waiting")
    result = staff.get(r.headers["Location"]).get_data(as_text=True)
    assert f'id="ticket-number">{t.number}<' in result and name in result
    assert re.search(r'id="ticket-ahead">\d+<', result)
    assert re.search(r'id="ticket-wait">[^<]*(Min\.|weniger als)', result), result
    assert 'class="qr" src="data:image/svg+xml;base64,' in result
    assert "data-print" in result and 'href="/reception"' in result  # print, and back to the form
    assert 'src="/static/reception.js"' in result and "<script>" not in result  # no inline script (CSP)
    # the citizen's status page (what the QR code opens) knows the ticket
    anon = app.test_client()
    wait_for(lambda: anon.get(f"/t/{tid}").status_code == 200)
    assert t.number in anon.get(f"/t/{tid}").get_data(as_text=True)


def receipt_text(page: str) -> str:
    part = page.split('id="receipt-lines"', 1)[1].split(">", 1)[1].split("</div>", 1)[0]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", part)).split())


def test_the_receipt_speaks_the_citizen_s_language_then_german(app, controller, cfg):  # noqa: F811
    """The receipt a citizen takes from the desk was in the clerk's language: a Turkish citizen got "Vorrang"
    and "Wartezeit". It now says what the dispenser's ticket says, in the citizen's language first and German
    below (English below on a German ticket); Arabic right to left."""
    staff = client(app, "anna")
    r = post(
        staff,
        "/reception",
        {"form": form_id(staff), "service": "melde", "priority": "1", "citizen_lang": "tr"},
    )
    page = staff.get(r.headers["Location"]).get_data(as_text=True)
    assert 'id="receipt-lines" lang="tr" dir="ltr"' in page
    said = receipt_text(page)
    assert said.startswith("Sıra numaranız") and "Öncelikli Vorrang" in said
    assert "Lütfen ekranı takip edin Bitte achten Sie auf die Anzeige" in said
    assert cfg.service("melde").name.de in said
    r = post(staff, "/reception", {"form": form_id(staff), "service": "pass", "citizen_lang": "ar"})
    page = staff.get(r.headers["Location"]).get_data(as_text=True)
    assert 'id="receipt-lines" lang="ar" dir="rtl"' in page and "رقمك" in receipt_text(page)
    r = post(staff, "/reception", {"form": form_id(staff), "service": "pass", "citizen_lang": "de"})
    said = receipt_text(staff.get(r.headers["Location"]).get_data(as_text=True))
    assert said.startswith("Ihre Nummer") and "Bitte achten Sie auf die Anzeige Please" in said


def test_the_same_form_sent_twice_is_one_ticket(app, controller):  # noqa: F811
    staff = client(app, "anna")
    fid = form_id(staff)
    first = post(staff, "/reception", {"form": fid, "service": "pass", "citizen_lang": "de"})
    again = post(staff, "/reception", {"form": fid, "service": "pass", "citizen_lang": "de"})
    assert first.status_code == again.status_code == 302
    assert first.headers["Location"] == again.headers["Location"]
    assert len(issued(controller, service="pass")) == 1
    # a new form (the next person) is a new ticket
    assert post(staff, "/reception", {"form": form_id(staff), "service": "pass"}).status_code == 302
    assert len(issued(controller, service="pass")) == 2


def test_a_stopped_intake_is_marked_and_refused_keeping_the_choice(app, controller, node):  # noqa: F811
    node("web").request("intake.set", {"service": "melde", "open": False, "reason": "Annahmeschluss"})
    live = app.extensions["waitroom"]
    wait_for(
        lambda: any(s["id"] == "melde" and not s.get("intake_open", True) for s in live.state()["services"])
    )
    staff = client(app, "anna")
    page = staff.get("/reception").get_data(as_text=True)
    assert re.search(r'id="service-melde"[^>]* disabled aria-describedby="closed-melde"', page), page
    assert 'id="closed-melde">(heute keine Nummern mehr)' in page
    assert not re.search(r'id="service-pass"[^>]* disabled', page)
    r = post(
        staff,
        "/reception",
        {"form": form_id(staff), "service": "melde", "priority": "1", "citizen_lang": "ar"},
    )
    body = html.unescape(r.get_data(as_text=True))
    assert r.status_code == 409
    assert (
        'id="issue-error" role="alert">Für dieses Anliegen werden heute keine Nummern mehr ausgegeben.<'
        in body
    )
    assert re.search(r'id="priority"[^>]* checked', body)  # the choice is kept
    assert re.search(r'<option value="ar"[^>]* selected', body)
    assert re.search(r'id="service-melde"[^>]* aria-invalid="true"', body)
    assert issued(controller, service="melde") == []
    # no service chosen: said at the field, nothing issued
    r = post(staff, "/reception", {"form": form_id(staff), "citizen_lang": "tr"})
    assert r.status_code == 400 and "Bitte ein Anliegen wählen." in r.get_data(as_text=True)
    assert re.search(r'<option value="tr"[^>]* selected', r.get_data(as_text=True))


def test_a_controller_that_does_not_answer_is_said_at_the_form(app, controller):  # noqa: F811
    staff = client(app, "anna")
    fid = form_id(staff)
    controller.stop()
    r = post(staff, "/reception", {"form": fid, "service": "pass", "priority": "1", "citizen_lang": "uk"})
    body = r.get_data(as_text=True)
    assert r.status_code == 503
    assert (
        'id="issue-error" role="alert">Die Steuerung antwortet nicht. Bitte gleich noch einmal versuchen.<'
        in body
    )
    assert re.search(r'id="service-pass"[^>]* checked', body) and re.search(
        r'id="priority"[^>]* checked', body
    )
    assert re.search(r'<option value="uk"[^>]* selected', body)
    assert FORM_RE.search(body).group(1) != fid  # a new request id: sending it again is a new attempt


def test_a_booking_code_checked_in_at_the_desk(app, controller, node):  # noqa: F811
    soon = time.time() + 600
    code = node("web").request("appointment.book", {"service": "pass", "slot": soon})["appointment"]["code"]
    staff = client(app, "anna")
    r = post(staff, "/reception/checkin", {"form": form_id(staff), "code": code.lower()})
    assert r.status_code == 302, r.get_data(as_text=True)
    tid = r.headers["Location"].rsplit("/", 1)[1]
    t = controller.office.state.tickets[tid]
    assert t.appointment == soon and controller.office.state.appointments[code].ticket == tid
    assert f'id="ticket-number">{t.number}<' in staff.get(r.headers["Location"]).get_data(as_text=True)
    # an unknown code: said at the field, the code kept
    r = post(staff, "/reception/checkin", {"form": form_id(staff), "code": "NOSUCH1"})
    body = r.get_data(as_text=True)
    assert r.status_code == 404 and "kennen wir nicht" in body and 'value="NOSUCH1"' in body
    assert 'aria-invalid="true" aria-describedby="code-error' in body


def test_who_may_use_the_reception(app, controller):  # noqa: F811
    anon = app.test_client()
    r = anon.get("/reception")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    agent = client(app, "agent115")
    r = agent.get("/reception")  # a booking-only account: to the booking page, as from the staff pages
    assert r.status_code == 302 and r.headers["Location"].endswith("/booking/")
    assert agent.get("/reception/t/0123456789").status_code == 302
    assert (
        post(agent, "/reception", {"form": form_id(client(app, "anna")), "service": "pass"}).status_code
        == 403
    )
    admin = client(app, "admin")
    assert admin.get("/reception").status_code == 200
    assert 'href="/reception"' in admin.get("/admin/").get_data(as_text=True)
    staff = client(app, "anna")
    assert 'href="/reception"' in staff.get("/staff/").get_data(as_text=True)
    # a form without the CSRF token issues nothing
    csrf_token(staff, "/reception")
    r = staff.post("/reception", data={"form": form_id(staff), "service": "pass"})
    assert r.status_code == 400 and issued(controller) == []
    # a result page of another session's ticket is not shown
    assert staff.get("/reception/t/nosuchticket").status_code == 404
    # a staff page: German and English for the clerk (the citizen's languages are in the form only)
    english = staff.get("/reception?lang=en").get_data(as_text=True)
    assert "<h1>Reception</h1>" in english and 'hreflang="de"' in english and 'hreflang="tr"' not in english
    assert '<option value="tr" lang="tr" dir="ltr">Türkçe</option>' in english


def test_the_reception_log_line_names_number_and_service_only(app, controller, caplog):  # noqa: F811
    """The page's own line (common.run_command's line for every staff action names its arguments)."""
    staff = client(app, "anna")
    with caplog.at_level("INFO", logger="waitroom.web.reception"):
        r = post(staff, "/reception", {"form": form_id(staff), "service": "pass", "citizen_lang": "tr"})
    t = controller.office.state.tickets[r.headers["Location"].rsplit("/", 1)[1]]
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "waitroom.web.reception"]
    assert lines == [f"reception: ticket {t.number} for pass"]


def test_the_printed_ticket_is_an_80_mm_receipt_and_nothing_else(server, browser):  # noqa: F811
    """In a real chromium: "Drucken" is there (a static script shows it: no inline script), and printed, the
    page is the ticket only (office, number, service, wait, date and time, QR code) on 80 mm paper."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    a11y_login(page, server)
    page.goto(server + reception_ticket(page, server))
    assert page.locator("#print").is_visible() and page.locator("#next-person").is_visible()
    page.emulate_media(media="print")
    shown_outside = page.evaluate(
        """[...document.querySelectorAll('body *')]
             .filter(e => e.checkVisibility() && !e.closest('.receipt') && !e.querySelector('.receipt'))
             .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : ''))"""
    )
    assert shown_outside == []
    for part in ("#receipt-h", "#ticket-number", "#receipt-lines", "#ticket-issued", ".qr"):
        assert page.locator(part).is_visible(), part
    assert page.evaluate("document.querySelector('.receipt').getBoundingClientRect().width") <= 80 / 25.4 * 96
    pdf = page.pdf(prefer_css_page_size=True)
    width_pt = float(re.search(rb"/MediaBox \[0 0 ([\d.]+) ", pdf).group(1))
    assert abs(width_pt - 80 / 25.4 * 72) < 1, width_pt  # the page is 80 mm wide, not A4


def top_nav(page: str) -> list[tuple[str, bool]]:
    """The top navigation's links: (address, marked as the current page)."""
    nav = re.search(r'<nav aria-label="[^"]*">(.*?)</nav>', page, re.S)
    assert nav, "no top navigation"
    return [
        (m.group(1), 'aria-current="page"' in m.group(0))
        for m in re.finditer(r'<a href="([^"]+)"[^>]*>', nav.group(1))
    ]


def test_the_reception_is_in_the_top_navigation_for_those_who_may_use_it(app, controller):  # noqa: F811
    staff = client(app, "anna")
    links = top_nav(staff.get("/reception").get_data(as_text=True))
    assert ("/reception", True) in links  # on the reception page its link is the current page
    assert ("/staff/", False) in links and [cur for _, cur in links].count(True) == 1
    links = top_nav(staff.get("/staff/").get_data(as_text=True))
    assert ("/reception", False) in links and ("/staff/", True) in links
    admin = client(app, "admin")
    assert ("/reception", False) in top_nav(admin.get("/admin/").get_data(as_text=True))
    # a booking-only (115) account may not use it (login_required("staff")): no link
    agent = client(app, "agent115")
    links = top_nav(agent.get("/booking/").get_data(as_text=True))
    assert ("/booking/", True) in links
    assert not [a for a, _ in links if a.startswith(("/reception", "/staff"))]
    # nobody logged in: no staff links at all
    anon = top_nav(app.test_client().get("/waiting").get_data(as_text=True))
    assert ("/waiting", True) in anon and "/reception" not in [a for a, _ in anon]
