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


def login(client: Any, name: str, password: str = PASSWORD) -> Any:
    token = csrf_token(client, "/login")
    return client.post("/login", data={"username": name, "password": password, "csrf_token": token})
