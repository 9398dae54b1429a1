"""The office broker under attack and under load, with the generated files and a real mosquitto.

- The generated configuration and ACL load without a single mosquitto warning.
- Client ids are bound to user names: a node's credentials with the controller's client id cannot take over
  the controller's session (the controller stays connected and its retained status stays ``online``).
- One node flooding its command topic does not cost other nodes their replies.
- ``broker certs`` leaves the broker key readable by the broker's group and by nobody else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from mqtt_broker import office as gen
from mqtt_broker.pki import OfficePki
from tests.conftest import require_tool
from tests.test_broker_acl import Client, Office, readable_tmpdir, start_office_broker
from waitroom import contract
from waitroom.contract import CONTROLLER_NODE_ID, Topics
from waitroom.mqtt import stop_loop
from waitroom.node import NodeRuntime
from waitroom.service import ControllerService


@pytest.fixture(scope="module")
def office() -> Iterator[Office]:
    require_tool("mosquitto", "mosquitto", "/usr/sbin/mosquitto")
    require_tool("openssl", "openssl")
    folder = readable_tmpdir("waitroom-broker-hard-")
    o = start_office_broker(folder, office_id="hard")
    try:
        yield o
    finally:
        o.broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def controller(office: Office, tmp_path: Path) -> Iterator[ControllerService]:
    svc = ControllerService(
        office.cfg, str(tmp_path / "events.db"), password=office.passwords[CONTROLLER_NODE_ID]
    )
    assert svc.start(wait=10)
    yield svc
    svc.stop()


class Watcher:
    """The web account (it may read every node's status) recording the controller's status messages."""

    def __init__(self, office: Office):
        self.statuses: list[str] = []
        self.c = Client("web", office.passwords["web"], office.local_port)
        self.c.c.on_message = self._on_message
        assert self.c.connect() == 0
        self.c.subscribe([office.topics.status(CONTROLLER_NODE_ID)])

    def _on_message(self, c, u, msg) -> None:
        self.statuses.append(json.loads(msg.payload)["status"])

    def close(self) -> None:
        self.c.close()


@pytest.mark.parametrize("foreign_id", ["waitroom-hard-controller", "controller"])
def test_a_node_cannot_take_over_the_controllers_client_id(
    office: Office, controller: ControllerService, foreign_id: str
) -> None:
    watcher = Watcher(office)
    drops: list[object] = []
    controller.link.on_disconnect_hooks.append(lambda: drops.append(time.monotonic()))
    try:
        # the retained status may still be the previous test's "offline" until this controller's "online"
        # has passed the broker (a busy machine): start counting once "online" is there
        deadline = time.monotonic() + 10
        while "online" not in watcher.statuses and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "online" in watcher.statuses, watcher.statuses
        watcher.statuses.clear()
        for _ in range(5):
            intruder = paho.Client(CallbackAPIVersion.VERSION2, client_id=foreign_id, protocol=paho.MQTTv311)
            intruder.username_pw_set("disp-1", office.passwords["disp-1"])
            connected = threading.Event()
            intruder.on_connect = lambda *a, ev=connected: ev.set()
            intruder.connect("127.0.0.1", office.local_port)
            intruder.loop_start()
            assert connected.wait(5), "disp-1's own login works"
            time.sleep(0.2)
            intruder.disconnect()
            stop_loop(intruder)
        time.sleep(0.5)
        assert drops == [], "the controller was never disconnected"
        assert controller.link.connected.is_set()
        assert "offline" not in watcher.statuses, watcher.statuses
        # The controller still answers.
        rt = NodeRuntime(office.cfg, "disp-1", password=office.passwords["disp-1"])
        assert rt.start(wait=10)
        try:
            reply = rt.request_reply("ticket.issue", {"service": "pass"}, timeout=3, retries=0)
            assert reply["ok"], reply
        finally:
            rt.stop()
    finally:
        watcher.close()


def test_the_controllers_own_credentials_do_replace_its_session(
    office: Office, controller: ControllerService
) -> None:
    """The binding is to the user: a second login as ``controller`` (a restarted controller) takes over."""
    drops: list[float] = []
    controller.link.on_disconnect_hooks.append(lambda: drops.append(time.monotonic()))
    second = Client(CONTROLLER_NODE_ID, office.passwords[CONTROLLER_NODE_ID], office.local_port)
    assert second.connect() == 0
    deadline = time.monotonic() + 5
    while not drops and time.monotonic() < deadline:
        time.sleep(0.02)
    second.close()
    assert drops, "the first session was replaced"
    assert controller.link.connected.wait(10), "and the controller reconnects within the back-off cap"


def test_a_flooding_node_does_not_cost_other_nodes_their_replies(
    office: Office, controller: ControllerService
) -> None:
    t = Topics(office.cfg.office.id)
    log_start = office.broker.log_path.stat().st_size  # the module's broker: earlier tests wrote there too
    flood_total = 20000
    flooder = paho.Client(CallbackAPIVersion.VERSION2, client_id="flood", protocol=paho.MQTTv311)
    flooder.username_pw_set("counter-2", office.passwords["counter-2"])
    flooder.max_inflight_messages_set(1000)
    flooder.max_queued_messages_set(0)
    acked = [0]
    flooder.on_publish = lambda *a: acked.__setitem__(0, acked[0] + 1)
    flooder.connect("127.0.0.1", office.local_port)
    flooder.loop_start()
    nodes = {n: NodeRuntime(office.cfg, n, password=office.passwords[n]) for n in ("disp-1", "counter-1")}
    for rt in nodes.values():
        assert rt.start(wait=10)
    done = threading.Event()

    def flood() -> None:
        # Real state changes (each one a durable commit), so the flood outruns the controller anywhere.
        for i in range(flood_total):
            op, args = (
                ("counter.pause", {"counter": "c2", "reason": "x"})
                if i % 2
                else ("counter.open", {"counter": "c2"})
            )
            cmd = contract.command(op, args, request_id=f"flood-{i}")
            flooder.publish(t.cmd("counter-2"), contract.encode(cmd), qos=1)
        done.set()

    answered: list[tuple[str, bool, float]] = []
    try:
        threading.Thread(target=flood, daemon=True).start()
        time.sleep(0.2)  # the flood is under way
        for i in range(10):
            for node_id, op, args in (
                ("disp-1", "ticket.issue", {"service": "melde"}),
                ("counter-1", "counter.open", {"counter": "c1"}),
            ):
                start = time.monotonic()
                # No retry: the first copy of each command must be answered.
                rid = f"{node_id}-{i}"
                reply = nodes[node_id].request_reply(op, args, timeout=5, retries=0, request_id=rid)
                answered.append((node_id, reply["id"] == rid, time.monotonic() - start))
        assert done.wait(60), "the flood was sent"
        deadline = time.monotonic() + 30
        while acked[0] < flood_total and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        flooder.disconnect()
        stop_loop(flooder)
        for rt in nodes.values():
            rt.stop()
    assert len(answered) == 20 and all(ok for _, ok, _ in answered)
    assert acked[0] == flood_total, "the broker took the whole flood"
    with office.broker.log_path.open("rb") as f:
        f.seek(log_start)
        log = f.read().decode(errors="replace")
    assert "Outgoing messages are being dropped" not in log, log[-2000:]
    assert controller.link.inbox is not None and controller.link.inbox.dropped > 0, "the flood did overflow"


def test_broker_certs_key_is_readable_by_the_broker_group_only(tmp_path: Path) -> None:
    require_tool("openssl", "openssl")
    pki = OfficePki(tmp_path / "pki", "hard")
    pki.broker(["localhost"])
    key = tmp_path / "pki" / "broker.key"
    mode = stat.S_IMODE(key.stat().st_mode)
    try:
        import grp

        gid = grp.getgrnam("mosquitto").gr_gid
    except KeyError:
        assert mode == 0o600
        return
    assert mode == 0o640
    assert key.stat().st_gid == gid
    assert stat.S_IMODE((tmp_path / "pki" / "ca.key").stat().st_mode) == 0o600, "the CA key stays private"


def test_generated_limits_hold_the_largest_contract_message() -> None:
    assert gen.MAX_PACKET_BYTES >= 16 * contract.MAX_PAYLOAD_BYTES
    opts = gen.BrokerOptions()
    assert opts.max_queued_bytes >= 64 * contract.MAX_PAYLOAD_BYTES


def test_generated_config_and_acl_load_without_warnings(office: Office) -> None:
    # A reload re-reads the ACL and the password file; it must not warn either.
    office.broker.proc.send_signal(1)  # SIGHUP
    probe = Client("disp-1", office.passwords["disp-1"], office.local_port)
    assert probe.connect() == 0
    probe.close()
    time.sleep(0.3)
    log = office.broker.log_path.read_text()
    assert "as disp-1 (" in log, "the broker uses the user name as the client id"
    assert [line for line in log.splitlines() if "warning" in line.lower()] == []
    conf = (office.folder / "mosquitto.conf").read_text()
    assert conf.count("use_username_as_clientid true") == 2, "both listeners bind client ids to users"


def test_secret_files_are_never_world_readable_while_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """write_file wrote the passwords (`waitroom broker passwords`, the password file, the bridge section with
    the city password) with the umask's mode first and chmod-ed afterwards: for that moment, and for good
    when the chmod failed or the process died in between, a world-readable copy lay next to the file."""
    old_umask = os.umask(0o022)
    real_chmod = Path.chmod

    def chmod(self: Path, mode: int, **kw: object) -> None:
        if self.name.endswith(".tmp"):
            raise OSError("interrupted between writing and chmod")
        real_chmod(self, mode, **kw)

    monkeypatch.setattr(Path, "chmod", chmod)
    try:
        with contextlib.suppress(OSError):
            gen.write_file(tmp_path / "mqtt-passwords.yaml", "disp-1: s3cret\n", mode=0o600)
    finally:
        os.umask(old_umask)
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert files, "nothing written"
    assert all(m & 0o077 == 0 for m in files.values()), {n: oct(m) for n, m in files.items()}
    assert files == {"mqtt-passwords.yaml": 0o600}
