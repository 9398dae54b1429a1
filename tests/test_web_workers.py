"""The web app in several processes (real gunicorn gevent workers, a real mosquitto and controller):
sessions and rate limits live in SQLite files of the data directory, so a login made in one process,
its revocation and every counted request are seen by the others.

Two ``waitroom web`` servers on two ports share one data directory: requests go to the process the test
chooses (inside one gunicorn the kernel picks the worker). A third server runs ``--workers 2`` and must
answer every request with the office state (its workers' MQTT client ids do not collide)."""

from __future__ import annotations

import http.cookiejar
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.web_helpers import PASSWORD

pytestmark = [pytest.mark.slow]


def start_web(
    conf: Path, data: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    from mqtt_broker.local import free_port, wait_for_port

    port = free_port()
    env = {**os.environ, "WAITROOM_SECRET_KEY": "workers-secret-key-0123456789abcdef", **(env or {})}
    cmd = [sys.executable, "-m", "waitroom.cli", "web", "--config", str(conf), "--data-dir", str(data)]
    proc = subprocess.Popen(
        [*cmd, "--bind", f"127.0.0.1:{port}", "--log-level", "warning", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, timeout=30)
    return proc, f"http://127.0.0.1:{port}"


class Browser:
    def __init__(self) -> None:
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, url: str) -> tuple[int, str, str]:
        try:
            with self.opener.open(url, timeout=10) as r:
                return r.status, r.geturl(), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, url, e.read().decode()

    def post(self, url: str, data: dict[str, str]) -> int:
        req = urllib.request.Request(url, data=urllib.parse.urlencode(data).encode())
        try:
            with self.opener.open(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def token(self, url: str) -> str:
        m = re.search(r'name="csrf-token" content="([^"]+)"', self.get(url)[2])
        assert m
        return m.group(1)

    def login(self, base: str, password: str = PASSWORD) -> int:
        return self.post(
            base + "/login",
            {"username": "anna", "password": password, "csrf_token": self.token(base + "/login")},
        )

    def copy_cookies_to(self, other: Browser) -> None:
        for c in self.jar:
            other.jar.set_cookie(c)


@pytest.fixture
def cfg(broker):
    """The test office without the automatic intake stop (late in the evening it would refuse tickets)."""
    from tests.conftest import _office_counter, office_config

    base = office_config(broker.port, office_id=f"w{next(_office_counter)}")
    steering = base.steering.model_copy(
        update={"intake_stop": base.steering.intake_stop.model_copy(update={"enabled": False})}
    )
    return base.model_copy(update={"steering": steering})


@pytest.fixture
def servers(cfg, controller, tmp_path):
    from waitroom.web.users import UserStore

    cfg = cfg.model_copy(
        update={
            "web": {"public_rate_per_min": 20, "login_failures_per_user": 3, "login_failures_per_address": 50}
        }
    )
    conf = tmp_path / "office.yaml"
    conf.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), allow_unicode=True))
    store = UserStore(tmp_path / "web-users.db")
    store.add("anna", PASSWORD, "staff")
    store.close()
    procs = []
    try:
        a, url_a = start_web(conf, tmp_path)
        procs.append(a)
        b, url_b = start_web(conf, tmp_path)
        procs.append(b)
        yield url_a, url_b, conf, tmp_path, procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def test_login_on_one_revocation_seen_by_the_other(servers):
    url_a, url_b, *_ = servers
    staff = Browser()
    assert staff.login(url_a) == 200  # redirected to the workstation picker
    thief = Browser()
    staff.copy_cookies_to(thief)
    status, final, _ = thief.get(url_b + "/staff/c1")
    assert status == 200 and final.endswith("/staff/c1")  # the session is known in the other process
    assert staff.post(url_a + "/logout", {"csrf_token": staff.token(url_a + "/staff/c1")}) == 200
    status, final, _ = thief.get(url_b + "/staff/c1")
    assert "/login" in final  # revoked in A, refused in B


def test_limits_are_shared_between_processes(servers):
    url_a, url_b, *_ = servers
    wrong = Browser()
    fails = [wrong.login(u, "wrong-password") for u in (url_a, url_b, url_a)]
    assert fails == [401, 401, 401]
    assert wrong.login(url_b) == 429  # locked in B by the failures counted in A and B
    # 20 public requests per minute and address over both processes: each process alone has seen at most
    # 4 + 7 of them, so a 429 from each shows the counts are shared
    codes = [Browser().get(u + "/api/public")[0] for u in [url_a, url_b] * 7 + [url_a]]
    assert codes[:8] == [200] * 8 and codes[-2:] == [429, 429], codes


def test_two_gunicorn_workers_both_follow_the_office(servers, node):
    _, _, conf, data, procs = servers
    proc, url = start_web(conf, data / "w2", "--workers", "2")
    procs.append(proc)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        if len(kids) == 2:
            break
        time.sleep(0.2)
    assert len(kids) == 2
    time.sleep(2.0)  # colliding MQTT client ids would now kick each other off the broker
    node("disp-1").request("ticket.issue", {"service": "pass"})
    time.sleep(0.5)
    codes = []
    for _ in range(8):  # fresh connections: the kernel spreads them over the workers
        status, _, body = Browser().get(url + "/api/state")  # w2 has limits of its own
        codes.append((status, '"A001"' in body))
    assert all(code == (200, True) for code in codes), codes


def wait_for_workers(proc: subprocess.Popen[bytes], n: int) -> None:
    deadline = time.monotonic() + 30
    kids: list[str] = []
    while time.monotonic() < deadline:
        kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        if len(kids) == n:
            return
        time.sleep(0.2)
    raise AssertionError(f"gunicorn has {len(kids)} workers, not {n}")


def test_workers_under_the_generated_broker_config(tmp_path):
    """The office broker binds client ids to user names (use_username_as_clientid) and checks passwords:
    each worker logs in with an account of its own (web, web.2), so neither takes the other's session."""
    import json

    from tests.test_broker_acl import Client, readable_tmpdir, start_office_broker
    from waitroom.contract import CONTROLLER_NODE_ID
    from waitroom.service import ControllerService

    folder = readable_tmpdir("waitroom-web-workers-")
    office = start_office_broker(folder, office_id="ww")
    ctl = ControllerService(
        office.cfg, str(tmp_path / "events.db"), password=office.passwords[CONTROLLER_NODE_ID]
    )
    procs: list[subprocess.Popen[bytes]] = []
    disp = None
    try:
        assert ctl.start(wait=10)
        conf = tmp_path / "office.yaml"
        conf.write_text(yaml.safe_dump(office.cfg.model_dump(mode="json", exclude_none=True)))
        env = {"WAITROOM_MQTT_PASSWORD": office.passwords["web"]}
        proc, url = start_web(conf, tmp_path / "web", "--workers", "2", env=env)
        procs.append(proc)
        wait_for_workers(proc, 2)
        log = office.broker.log_path
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(
            f"as web{s} " in log.read_text() or f"u'web{s}'" in log.read_text() for s in ("", ".2")
        ):
            time.sleep(0.2)
        disp = Client("disp-1", office.passwords["disp-1"], office.local_port)
        assert disp.connect() == 0
        disp.subscribe([office.topics.reply("disp-1")])
        cmd = {"id": "r1", "op": "ticket.issue", "args": {"service": "pass"}}
        disp.c.publish(office.topics.cmd("disp-1"), json.dumps(cmd), qos=1)
        time.sleep(3.0)  # colliding sessions would now have kicked each other off a few times
        codes = []
        for _ in range(8):  # fresh connections: the kernel spreads them over the workers
            status, _, body = Browser().get(url + "/api/state")
            codes.append((status, '"A001"' in body))
        assert all(code == (200, True) for code in codes), codes
        text = log.read_text()
        assert "already connected, closing old connection" not in text, text[-3000:]
        assert "not authorised" not in text.lower(), text[-3000:]
    finally:
        if disp is not None:
            disp.close()
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        ctl.stop()
        office.broker.stop()


def test_more_workers_than_accounts_is_a_config_error(cfg, tmp_path):
    conf = tmp_path / "office.yaml"
    conf.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    env = {**os.environ, "WAITROOM_SECRET_KEY": "workers-secret-key-0123456789abcdef"}
    cmd = [sys.executable, "-m", "waitroom.cli", "web", "--config", str(conf), "--workers", "3"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "nodes[web].workers: 2, but --workers 3" in out.stderr, out.stderr


def test_two_web_servers_of_one_user_share_no_control_socket(cfg, controller, tmp_path):
    """gunicorn 27 opens a control socket at $HOME/.gunicorn/gunicorn.ctl, one path for every server of the
    user (the web app, the city view, a test beside the demo); waitroom does not use it, so none is made."""
    conf = tmp_path / "office.yaml"
    conf.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), allow_unicode=True))
    home = tmp_path / "home"
    home.mkdir()
    proc, url = start_web(conf, tmp_path, env={"HOME": str(home)})
    try:
        assert Browser().get(url + "/api/public")[0] == 200
        assert not (home / ".gunicorn").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _open_stores(folders: list[Path], barrier, results) -> None:  # forked: a gunicorn worker starting
    from waitroom.web.security import SessionStore, SQLiteStorage
    from waitroom.web.users import UserStore

    failures = []
    for folder in folders:  # a new data directory each time, opened by both processes at the same moment
        barrier.wait(30)
        try:
            UserStore(folder / "users.db")
            SessionStore(folder / "users.db")
            SQLiteStorage(f"waitroom-sqlite://{folder / 'web-limits.db'}")
        except Exception as exc:  # reported to the test, which names it
            failures.append((folder.name, repr(exc)))
    results.put(failures)


def test_workers_that_start_together_open_a_new_data_directory_one_after_the_other(tmp_path):
    """gunicorn starts its workers together, and on a new data directory each creates the users, sessions and
    rate-limit files. Two first connections that switch a new file to WAL at the same moment got "database is
    locked" at once (SQLite does not wait there): the worker did not boot, and gunicorn stopped -- the first
    start after a deployment with ``workers: 2``."""
    import multiprocessing

    from waitroom.web import security, users  # noqa: F401 -- imported before the fork, as gunicorn does

    ctx = multiprocessing.get_context("fork")
    folders = [tmp_path / f"data-{k}" for k in range(150)]
    for folder in folders:
        folder.mkdir()
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_open_stores, args=(folders, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    failures = [f for _ in procs for f in results.get(timeout=120)]
    for p in procs:
        p.join(30)
    assert failures == []
