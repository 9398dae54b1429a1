"""The generated broker files against a real mosquitto: ACLs per role, passwords, anonymous access, TLS.

One mosquitto runs for the module with the files made by ``waitroom broker`` (config, ACL, password file,
certificates): a TLS listener for the nodes and the local-only plain listener. Every account publishes (QoS 1,
MQTT 5) to every topic of the office and subscribes to every topic; the broker must refuse exactly what the
contract does not grant (PUBACK reason code 135; a denied subscription receives nothing).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from mqtt_broker import office as gen
from mqtt_broker.local import Mosquitto, free_port
from mqtt_broker.pki import OfficePki, verify
from tests.conftest import office_config, require_tool
from waitroom.contract import CONTROLLER_NODE_ID, EventKind, Role, Topics, acl_rules
from waitroom.mqtt import stop_loop

NOT_AUTHORIZED = 135


# ------------------------------------------------------------------------------------------------ helpers
def readable_tmpdir(prefix: str) -> Path:
    """A temp dir mosquitto can traverse after dropping root to its own user."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(0o755)
    return d


def give_to_mosquitto(path: Path) -> None:
    try:
        pw = pwd.getpwnam("mosquitto")
    except KeyError:
        return
    if os.geteuid() == 0:
        os.chown(path, pw.pw_uid, pw.pw_gid)


@dataclass
class Office:
    cfg: object
    passwords: dict[str, str]
    broker: Mosquitto
    tls_port: int
    local_port: int
    pki: OfficePki
    folder: Path

    @property
    def topics(self) -> Topics:
        return Topics(self.cfg.office.id)


def start_office_broker(
    folder: Path,
    *,
    office_id: str = "acl",
    include_dir: str = "",
    require_certificate: bool = False,
    crl: bool = False,
) -> Office:
    """The office broker with the generated files; with ``require_certificate`` every account of the office
    gets its client certificate (``waitroom broker node-certs``) and the node listener requires one; with
    ``crl`` it checks them against the office CA's revocation list (empty unless one was revoked)."""
    tls_port, local_port = free_port(), free_port()
    cfg = office_config(local_port, office_id=office_id)
    passwords = gen.generate_passwords(cfg)
    pki = OfficePki(folder, cfg.office.id)
    pki.broker(["localhost", "127.0.0.1"])
    pki.node("disp-1")
    if require_certificate:
        pki.node_certificates([a.user for a in gen.accounts(cfg)])
    if crl:
        pki.ensure_crl()
    data = folder / "data"
    data.mkdir()
    give_to_mosquitto(data)
    gen.write_file(folder / "passwd", gen.password_file(cfg, passwords), 0o640, group="mosquitto")
    gen.write_file(folder / "acl", gen.acl_text(cfg))
    (folder / "broker.key").chmod(0o640)
    gen.set_group(folder / "broker.key", "mosquitto")
    opts = gen.BrokerOptions(
        files_dir=str(folder),
        data_dir=str(data),
        port=tls_port,
        bind="127.0.0.1",
        local_port=local_port,
        include_dir=include_dir,
        require_certificate=require_certificate,
        crl=crl,
    )
    conf = folder / "mosquitto.conf"
    gen.write_file(conf, gen.mosquitto_conf(cfg, opts))
    broker = Mosquitto(port=local_port, config=conf, workdir=folder).start()
    return Office(cfg, passwords, broker, tls_port, local_port, pki, folder)


class Client:
    """A paho MQTT 5 client that records connect results, PUBACK reason codes and received messages."""

    def __init__(
        self,
        user: str | None,
        password: str | None,
        port: int,
        *,
        ca: Path | None = None,
        cert: Path | None = None,
        key: Path | None = None,
        host: str = "127.0.0.1",
    ):
        self.c = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{time.monotonic_ns()}", protocol=paho.MQTTv5
        )
        if user is not None:
            self.c.username_pw_set(user, password)
        if ca is not None:
            self.c.tls_set(
                ca_certs=str(ca),
                certfile=str(cert) if cert else None,
                keyfile=str(key) if key else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self.connack = threading.Event()
        self.reason: int | None = None
        self.pubacks: dict[int, int] = {}
        self.received: list[str] = []
        self.suback: dict[int, list[int]] = {}
        self._lock = threading.Lock()
        self.c.on_connect = self._on_connect
        self.c.on_publish = self._on_publish
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_connect_fail = lambda *a: self.connack.set()
        self.c.on_disconnect = self._on_disconnect
        self.host, self.port = host, port

    def _on_connect(self, c, u, flags, reason, props) -> None:
        self.reason = reason.value
        self.connack.set()

    def _on_disconnect(self, c, u, flags, reason, props) -> None:
        if self.reason is None:
            self.reason = reason.value
        self.connack.set()

    def _on_publish(self, c, u, mid, reason, props) -> None:
        with self._lock:
            self.pubacks[mid] = reason.value

    def _on_message(self, c, u, msg) -> None:
        with self._lock:
            self.received.append(msg.topic)

    def _on_subscribe(self, c, u, mid, reasons, props) -> None:
        self.suback[mid] = [r.value for r in reasons]

    def connect(self, timeout: float = 5.0) -> int:
        try:
            self.c.connect(self.host, self.port, keepalive=30)
        except (OSError, ssl.SSLError):
            return -1
        self.c.loop_start()
        assert self.connack.wait(timeout), "no CONNACK"
        return self.reason if self.reason is not None else -1

    def publish_all(self, topics: list[str], timeout: float = 10.0) -> dict[str, int]:
        mids = {self.c.publish(t, b'{"probe":1}', qos=1).mid: t for t in topics}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.pubacks) < len(mids):
            time.sleep(0.01)
        return {t: self.pubacks.get(mid, -1) for mid, t in mids.items()}

    def subscribe(self, filters: list[str]) -> None:
        mid = self.c.subscribe([(f, 1) for f in filters])[1]
        deadline = time.monotonic() + 5
        while mid not in self.suback and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        self.c.disconnect()
        stop_loop(self.c)


def concrete_topics(t: Topics, users: list[str]) -> list[str]:
    """Every topic a client could publish to: office-wide ones, each node kind per user, and foreign ones."""
    out = [t.state(), t.public()] + [t.event(k) for k in EventKind]
    for user in [*users, "intruder"]:
        out += [t.node(user, kind) for kind in ("status", "health", "cmd", "reply", "sim")]
    other = Topics(t.office + "x")  # another office on the same broker, and a topic outside the tree
    return [*out, other.state(), other.public(), other.cmd("controller"), "$SYS/test", "elsewhere/topic"]


def granted(office: str, role: Role, user: str, topic: str, want: str) -> bool:
    """Independent reading of the contract's ACL rules (paho's matcher, %u = user)."""
    for r, access, pattern in acl_rules(office):
        if (
            r is role
            and access in (want, "readwrite")
            and paho.topic_matches_sub(pattern.replace("%u", user), topic)
        ):
            return True
    return False


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def office() -> Iterator[Office]:
    require_tool("mosquitto", "mosquitto", "/usr/sbin/mosquitto")
    require_tool("openssl", "openssl")
    folder = readable_tmpdir("waitroom-broker-acl-")
    o = start_office_broker(folder)
    try:
        yield o
    finally:
        o.broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------------------------------------- tests
def test_contract_invariants_hold_in_the_generated_rules() -> None:
    """The policy in words, checked against the rules the ACL file is made from (so the tests mean it)."""
    t = Topics("x")
    for role in Role:
        if role is Role.CONTROLLER:
            continue
        for topic in (
            t.state(),
            t.public(),
            t.event("call"),
            t.reply("other"),
            t.cmd("other"),
            t.status("other"),
            t.health("other"),
        ):
            assert not granted("x", role, "me", topic, "write"), (role, topic)
        assert not granted("x", role, "me", t.reply("me"), "write")
        assert granted("x", role, "me", t.state(), "read")
        assert granted("x", role, "me", t.status("me"), "write")
    assert not granted("x", Role.DISPLAY, "me", t.cmd("me"), "write"), "a display sends no commands"
    assert granted("x", Role.COUNTER, "me", t.cmd("me"), "write")
    assert not granted("x", Role.COUNTER, "me", t.sim("other"), "write")
    for role in Role:  # only the controller writes a sim topic (the demo's broker has no ACL)
        assert granted("x", role, "me", t.sim("other"), "write") is (role is Role.CONTROLLER), role
    assert not granted("x", Role.DISPENSER, "me", t.cmd("other"), "read"), "nobody reads others' commands"
    assert granted("x", Role.CONTROLLER, "controller", t.cmd("any"), "read")


def test_acl_file_uses_only_contract_topics(office: Office) -> None:
    text = (office.folder / "acl").read_text()
    rule_topics = {p for _, _, p in acl_rules(office.cfg.office.id)}
    for line in text.splitlines():
        if line.startswith(("pattern ", "topic ")):
            topic = line.split()[-1]
            assert topic in rule_topics or any(
                topic == p.replace("%u", u) for p in rule_topics for u in office.passwords
            ), line
    assert "pattern write waitroom/v1/acl/node/%u/status" in text


def allowed_for(office: str, role: Role, user: str, topic: str, want: str) -> bool:
    """``granted`` for an account: a web worker's account (``web.2``) acts as its node (``web``)."""
    return granted(office, role, user.partition(".")[0], topic, want)


def node_ids(office: Office) -> list[str]:
    """The node ids behind the accounts (a worker account's own name is no node id: no topics of its own)."""
    return [u for u in office.passwords if "." not in u]


@pytest.mark.parametrize(
    "user", [CONTROLLER_NODE_ID, "disp-1", "display-1", "counter-1", "sb-1", "web", "web.2"]
)
def test_every_role_may_publish_only_what_the_contract_grants(office: Office, user: str) -> None:
    cfg = office.cfg
    role = cfg.role_of(user.partition(".")[0])
    topics = concrete_topics(office.topics, node_ids(office))
    client = Client(user, office.passwords[user], office.local_port)
    assert client.connect() == 0
    try:
        codes = client.publish_all(topics)
    finally:
        client.close()
    wrong = []
    for topic, code in codes.items():
        allowed = allowed_for(cfg.office.id, role, user, topic, "write")
        if (allowed and code >= 128) or (not allowed and code != NOT_AUTHORIZED):
            wrong.append(f"{topic}: PUBACK {code}, expected {'success' if allowed else NOT_AUTHORIZED}")
    assert not wrong, f"{user} ({role}):\n" + "\n".join(wrong)
    assert sum(1 for c in codes.values() if c == NOT_AUTHORIZED) > (3 if role is Role.CONTROLLER else 20)


@pytest.mark.parametrize("user", ["disp-1", "display-1", "counter-1", "sb-1", "web", "web.2"])
def test_every_role_receives_only_what_the_contract_grants(office: Office, user: str) -> None:
    cfg = office.cfg
    role = cfg.role_of(user.partition(".")[0])
    t = office.topics
    topics = [x for x in concrete_topics(t, node_ids(office)) if x.startswith(t.base + "/")]
    expected = {x for x in topics if allowed_for(cfg.office.id, role, user, x, "read")}
    assert expected, "every node reads something"
    # One login at a time: the broker binds the client id to the user, a second login replaces the first.
    for kind, filters, copies in (("exact", topics, 2), ("wildcard", [f"{t.base}/#", "#"], 1)):
        sub = Client(user, office.passwords[user], office.local_port)
        ctl = Client(CONTROLLER_NODE_ID, office.passwords[CONTROLLER_NODE_ID], office.local_port)
        assert sub.connect() == 0 and ctl.connect() == 0
        try:
            sub.subscribe(filters)
            marker = t.state()
            codes = ctl.publish_all([*topics, marker])
            assert all(c < 128 for c in codes.values())
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and sub.received.count(marker) < copies:
                time.sleep(0.02)
            time.sleep(0.1)
        finally:
            for c in (sub, ctl):
                c.close()
        assert set(sub.received) == expected, f"{user}: {kind} subscriptions"
        assert t.cmd("counter-2") not in sub.received


@pytest.mark.parametrize("user", ["web", "web.2"])
def test_the_web_account_cannot_press_a_nodes_buttons(office: Office, user: str) -> None:
    """The web app publishes only its own status, health and commands in production; its account could write
    every node's ``sim`` topic, i.e. press any button of a node started with ``--simulate``."""
    t = office.topics
    client = Client(user, office.passwords[user], office.local_port)
    assert client.connect() == 0
    try:
        codes = client.publish_all([t.sim("disp-1"), t.sim("counter-1"), t.sim("web"), t.cmd("web")])
    finally:
        client.close()
    assert codes.pop(t.cmd("web")) < 128, "its own command topic stays writable"
    assert codes == dict.fromkeys([t.sim("disp-1"), t.sim("counter-1"), t.sim("web")], NOT_AUTHORIZED)


@pytest.mark.parametrize(
    ("user", "password", "why"),
    [
        ("disp-1", "wrong-password", "wrong password"),
        ("nobody", "whatever", "unknown user"),
        (None, None, "anonymous"),
    ],
)
def test_bad_logins_are_refused(office: Office, user: str | None, password: str | None, why: str) -> None:
    client = Client(user, password, office.local_port)
    code = client.connect()
    client.close()
    assert code in (134, 135), f"{why}: CONNACK {code}"  # bad user name or password / not authorized


def test_tls_with_generated_certificates(office: Office) -> None:
    verify(office.pki.ca_cert, office.folder / "broker.crt")
    received: list[str] = []
    client = Client(
        "counter-1", office.passwords["counter-1"], office.tls_port, ca=office.pki.ca_cert, host="localhost"
    )
    assert client.connect() == 0
    client.c.on_message = lambda c, u, m: received.append(m.payload.decode())
    client.subscribe([office.topics.reply("counter-1")])
    ctl = Client(
        CONTROLLER_NODE_ID,
        office.passwords[CONTROLLER_NODE_ID],
        office.tls_port,
        ca=office.pki.ca_cert,
        host="127.0.0.1",
    )
    assert ctl.connect() == 0
    assert ctl.publish_all([office.topics.reply("counter-1")])[office.topics.reply("counter-1")] < 128
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.02)
    client.close()
    ctl.close()
    assert received == ['{"probe":1}']


def test_tls_refuses_an_unknown_ca_and_plain_tcp(office: Office, tmp_path: Path) -> None:
    other = OfficePki(readable_tmpdir("waitroom-other-ca-"), "other")
    other.ensure_ca()
    bad = Client(
        "counter-1", office.passwords["counter-1"], office.tls_port, ca=other.ca_cert, host="localhost"
    )
    assert bad.connect() == -1, "a client that trusts another CA must not connect"
    plain = Client("counter-1", office.passwords["counter-1"], office.tls_port)
    assert plain.connect(timeout=5) != 0, "plain MQTT on the TLS port must fail"
    plain.close()


def test_password_file_is_accepted_by_mosquitto_passwd_format(tmp_path: Path) -> None:
    """Our PBKDF2-SHA512 hash and mosquitto_passwd's verify against each other."""
    tool = require_tool("mosquitto_passwd", "mosquitto")
    f = tmp_path / "pw"
    subprocess.run([tool, "-c", "-b", str(f), "alice", "s3cret"], check=True, capture_output=True)
    stored = gen.parse_password_file(f.read_text())["alice"]
    assert gen.verify_password(stored, "s3cret")
    assert not gen.verify_password(stored, "s3cret!")
    ours = gen.hash_password("s3cret", salt=bytes(range(12)))
    assert ours.startswith("$7$101$AAECAwQFBgcICQoL$") and gen.verify_password(ours, "s3cret")


def test_password_file_is_stable_and_rehashes_changed_passwords() -> None:
    cfg = office_config(1883, office_id="pw")
    pw = gen.generate_passwords(cfg)
    first = gen.password_file(cfg, pw)
    assert gen.password_file(cfg, pw, first) == first, "same passwords: same bytes (idempotent)"
    changed = gen.password_file(cfg, {**pw, "web": "new-one"}, first)
    old_lines, new_lines = first.splitlines(), changed.splitlines()
    assert [a == b for a, b in zip(old_lines, new_lines, strict=True)].count(False) == 1
    assert gen.verify_password(gen.parse_password_file(changed)["web"], "new-one")


def test_missing_and_unknown_passwords_are_named() -> None:
    cfg = office_config(1883, office_id="pw")
    pw = gen.generate_passwords(cfg)
    del pw["sb-1"]
    pw["ghost"] = "x"
    with pytest.raises(gen.BrokerSetupError) as err:
        gen.password_file(cfg, pw)
    assert "sb-1: no password" in str(err.value) and "ghost: not a node of office pw" in str(err.value)


def test_the_placeholders_of_the_example_vault_are_refused(tmp_path: Path) -> None:
    """An admin who copies vault.yml.example and forgets a password got a broker that accepted 'change-me'
    for that node: the placeholder is refused, naming the node."""
    from tests.conftest import ROOT

    example = ROOT / "ansible/inventory/example"
    vault = yaml.safe_load((example / "group_vars/all/vault.yml.example").read_text())
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps(vault["vault_waitroom_mqtt_passwords"]))
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "waitroom", "broker", "passwd"),
            *("--config", str(example / "office.yaml"), "--passwords", str(passwords)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and not proc.stdout
    for node in vault["vault_waitroom_mqtt_passwords"]:
        assert f"{node}: still the placeholder 'change-me' of vault.yml.example" in proc.stderr
