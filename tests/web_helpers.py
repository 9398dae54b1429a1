"""Helpers for the web tests: an app bound to the test office, logged-in clients, CSRF tokens."""

from __future__ import annotations

import re
import time
from typing import Any

CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')
PASSWORD = "correct-horse-1"


def wait_for(predicate: Any, timeout: float = 5.0, step: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


def csrf_token(client: Any, path: str = "/waiting") -> str:
    html = client.get(path).get_data(as_text=True)
    m = CSRF_RE.search(html)
    assert m, f"no csrf token on {path}"
    return m.group(1)


def in_berlin(cfg: Any) -> Any:
    """``cfg`` in Berlin's time zone: for a web app that reads an event log written on a fake Berlin clock.
    The test office's own zone is the one where it is noon now (conftest.midday_zone), and at some hours of
    the day a Monday 09:00 in Berlin is still Sunday there."""
    return cfg.model_copy(update={"office": cfg.office.model_copy(update={"timezone": "Europe/Berlin"})})


def login(client: Any, name: str, password: str = PASSWORD) -> Any:
    token = csrf_token(client, "/login")
    return client.post("/login", data={"username": name, "password": password, "csrf_token": token})


def _health_items(html: str, node_id: str) -> list[tuple[str, str, str]]:
    m = re.search(rf'<ul class="health" aria-label="[^"]*: {node_id}">(.*?)</ul>', html, re.S)
    assert m, f"no health list for {node_id}"
    return re.findall(r'<li class="([^"]*)" data-key="([^"]+)">(.*?)</li>', m.group(1), re.S)


def _said(fragment: str) -> str:
    from html import unescape

    return " ".join(unescape(re.sub(r"<[^>]+>", "", fragment)).split())


DETAILS_RE = re.compile(r"<details[^>]*><summary>(.*?)</summary>(.*?)</details>", re.S)


def health_lines(html: str, node_id: str) -> dict[str, tuple[str, str]]:
    """The health list of one node on the admin page: key -> (class, the line's text as read), without the
    technical detail folded away under it (see health_details)."""
    return {
        key: (cls.strip(), _said(DETAILS_RE.sub("", body))) for cls, key, body in _health_items(html, node_id)
    }


def health_details(html: str, node_id: str) -> dict[str, tuple[str, str]]:
    """The folded technical details of one node's health lines: key -> (the summary, the detail)."""
    out = {}
    for _, key, body in _health_items(html, node_id):
        m = DETAILS_RE.search(body)
        if m:
            out[key] = (_said(m.group(1)), _said(m.group(2)))
    return out


def log_in(page: Any, url: str, user: str, then: str | None = None) -> None:
    """A real browser's login: open ``url`` (the login page, or a page that sends there), sign in as ``user``
    and wait until the browser is at ``then`` (a URL glob), or until the page that follows has loaded."""
    page.goto(url)
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].primary")
    if then is None:
        page.wait_for_load_state()
    else:
        page.wait_for_url(then)
