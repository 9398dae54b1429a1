"""Client certificates bound to the node: the office broker with ``require_certificate`` and a real mosquitto.

The module's broker requires a certificate on the nodes' TLS listener and takes its CN as the login
(``use_identity_as_username``); every account of the office has its certificate (``waitroom broker
node-certs``). The controller logs in on the local plain listener with its password, as on a broker host.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mqtt_broker import office as gen
from mqtt_broker.local import free_port
from mqtt_broker.pki import CertificateError, OfficePki, common_name, not_after
from tests.conftest import office_config, require_tool
from tests.test_broker_acl import NOT_AUTHORIZED, Client, Office, readable_tmpdir, start_office_broker
from waitroom import config
from waitroom.contract import CONTROLLER_NODE_ID, Topics
from waitroom.errors import ConfigError
from waitroom.mqtt import MqttLink
from waitroom.node import NodeRuntime
from waitroom.service import ControllerService


@pytest.fixture(scope="module")
def office() -> Iterator[Office]:
    require_tool("mosquitto", "mosquitto", "/usr/sbin/mosquitto")
    require_tool("openssl", "openssl")
    folder = readable_tmpdir("waitroom-broker-certs-")
    # with the office CA's revocation list, as the broker role deploys it (empty: nothing revoked here)
    o = start_office_broker(folder, office_id="certs", require_certificate=True, crl=True)
    try:
        yield o
    finally:
        o.broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


def tls_client(office: Office, user: str | None, password: str | None, cert_of: str | None) -> Client:
    """A client on the TLS listener presenting ``nodes/<cert_of>.crt`` (None: no certificate)."""
    nodes = office.folder / "nodes"
    return Client(
        user,
        password,
        office.tls_port,
        ca=office.pki.ca_cert,
        cert=nodes / f"{cert_of}.crt" if cert_of else None,
        key=nodes / f"{cert_of}.key" if cert_of else None,
        host="localhost",
    )


def tls_cfg(office: Office) -> config.Config:
    """The office file as the nodes read it: TLS port, the office CA, ``{node}`` in the certificate paths."""
    nodes = office.folder / "nodes"
    tls = config.Tls(ca=str(office.pki.ca_cert), cert=f"{nodes}/{{node}}.crt", key=f"{nodes}/{{node}}.key")
    broker = office.cfg.broker.model_copy(update={"host": "localhost", "port": office.tls_port, "tls": tls})
    return office.cfg.model_copy(update={"broker": broker})


# ------------------------------------------------------------------------------------------------- tests
def test_the_generated_configuration_binds_the_certificate_to_the_login(office: Office) -> None:
    conf = (office.folder / "mosquitto.conf").read_text()
    node_listener = conf.split(f"listener {office.tls_port}")[1].split("\nlistener ")[0]
    assert "require_certificate true" in node_listener
    assert "use_identity_as_username true" in node_listener
    assert f"crlfile {office.folder}/crl.pem" in node_listener
    local_listener = conf.split(f"listener {office.local_port}")[1]
    assert "use_identity_as_username" not in local_listener, "the local listener keeps passwords"
    log = office.broker.log_path.read_text()
    assert "arning" not in log and "rror" not in log, log


def test_without_a_required_certificate_the_configuration_is_as_before() -> None:
    """The default (waitroom_broker_require_certificate: false) generates what it generated before."""
    cfg = office_config(1883, office_id="plain")
    conf = gen.mosquitto_conf(cfg)
    assert "require_certificate false" in conf and "use_identity_as_username" not in conf
    assert gen.mosquitto_conf(cfg, gen.BrokerOptions(require_certificate=True)) == conf.replace(
        "require_certificate false",
        "require_certificate true\n" + "\n".join(gen.CERTIFICATE_IDENTITY_LINES),
    )
    with pytest.raises(gen.BrokerSetupError, match="only be required on a TLS listener"):
        gen.mosquitto_conf(cfg, gen.BrokerOptions(tls=False, require_certificate=True))


def test_a_node_with_its_own_certificate_connects_and_works(office: Office, tmp_path: Path) -> None:
    """The nodes log in with nothing but the office file's ``{node}`` certificate paths (no password); the
    controller on the broker host logs in on the local listener with its password."""
    svc = ControllerService(
        office.cfg, str(tmp_path / "events.db"), password=office.passwords[CONTROLLER_NODE_ID]
    )
    assert svc.start(wait=10)
    cfg = tls_cfg(office)
    nodes = [NodeRuntime(cfg, n, password="") for n in ("disp-1", "counter-1")]
    try:
        for rt in nodes:
            assert rt.start(wait=10), f"{rt.node_id} connects with its own certificate"
        issued = nodes[0].request_reply("ticket.issue", {"service": "pass"}, timeout=5, retries=1)
        assert issued["ok"], issued
        called = nodes[1].request_reply("counter.call_next", {"counter": "c1"}, timeout=5, retries=1)
        assert called["ok"], called
        assert called["result"]["call"]["ticket"] == issued["result"]["ticket"]["number"]
    finally:
        for rt in nodes:
            rt.stop()
        svc.stop()


def test_a_controller_on_the_tls_listener_answers_a_burst_from_two_nodes_whole(
    office: Office, tmp_path: Path
) -> None:
    """The controller on the TLS listener with its own certificate: its engine thread writes each batch's
    replies and calls itself (``MqttLink.write_now``) while paho's network thread reads the same TLS
    connection, under the connection lock. Two nodes sending at once from their own threads get every reply
    at the first attempt (a lost or stuck one would time out: no retries here), and every ticket number is
    given once. (Their pace is that of a test, far over a node's rate limit, which is raised here: a flood's
    refusals are answered at most 5 a second.)"""
    cfg = tls_cfg(office)
    controller = cfg.controller.model_copy(update={"node_commands_per_s": 10_000.0})
    cfg = cfg.model_copy(update={"controller": controller})
    svc = ControllerService(cfg, str(tmp_path / "events.db"), password="")
    assert svc.start(wait=10)
    nodes = [NodeRuntime(cfg, n, password="") for n in ("disp-1", "counter-1")]
    replies: dict[str, list[dict]] = {"disp-1": [], "counter-1": []}
    N = 120

    def burst(rt: NodeRuntime, op: str, args: dict) -> None:
        for _ in range(N):
            replies[rt.node_id].append(rt.request_reply(op, args, timeout=5, retries=0))

    try:
        for rt in nodes:
            assert rt.start(wait=10)
        threads = [
            threading.Thread(target=burst, args=(nodes[0], "ticket.issue", {"service": "pass"})),
            threading.Thread(target=burst, args=(nodes[1], "counter.call_next", {"counter": "c1"})),
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        issued, calls = replies["disp-1"], replies["counter-1"]
        assert len(issued) == N and len(calls) == N  # a thread that met a timeout stopped short
        codes = {r["error"]["code"] for r in issued + calls if not r["ok"]}
        assert codes <= {"nobody_waiting"}, codes
        numbers = [r["result"]["ticket"]["number"] for r in issued if r["ok"]]
        assert numbers and len(set(numbers)) == len(numbers)
        called = [r["result"]["call"]["ticket"] for r in calls if r["ok"]]
        assert called and len(set(called)) == len(called) and set(called) <= set(numbers)
    finally:
        for rt in nodes:
            rt.stop()
        svc.stop()


@pytest.mark.parametrize(
    ("cert_of", "user"),
    [("disp-1", "counter-1"), ("disp-1", CONTROLLER_NODE_ID), ("counter-1", "web")],
)
def test_a_certificate_acts_only_as_its_own_node(office: Office, cert_of: str, user: str) -> None:
    """Node A's certificate with node B's user name and password: the broker takes A's CN as the login, so
    the client may publish A's topics and none of B's (nor, as the controller, the office state)."""
    t = office.topics
    client = tls_client(office, user, office.passwords[user], cert_of)
    assert client.connect() == 0
    try:
        codes = client.publish_all(
            [t.status(cert_of), t.status(user), t.cmd(user), t.health(user), t.state(), t.reply(cert_of)]
        )
    finally:
        client.close()
    assert codes.pop(t.status(cert_of)) < 128, "it acts as the certificate's node"
    assert set(codes.values()) == {NOT_AUTHORIZED}, codes


def test_a_certificate_cannot_take_over_another_nodes_session(office: Office) -> None:
    """The client id follows the certificate too: disp-1's certificate, sent with counter-1's client id and
    login, replaces disp-1's session, never counter-1's."""
    owner = tls_client(office, None, None, "counter-1")
    assert owner.connect() == 0
    try:
        intruder = tls_client(office, "counter-1", office.passwords["counter-1"], "disp-1")
        intruder.c._client_id = b"counter-1"  # paho sends this id in CONNECT
        assert intruder.connect() == 0
        intruder.close()
        t = office.topics
        assert owner.publish_all([t.status("counter-1")])[t.status("counter-1")] < 128
        assert owner.c.is_connected() and owner.reason == 0
    finally:
        owner.close()


@pytest.mark.parametrize(("user", "why"), [("disp-1", "a password but no certificate"), (None, "neither")])
def test_no_certificate_is_refused(office: Office, user: str | None, why: str) -> None:
    client = tls_client(office, user, office.passwords.get(user or ""), None)
    code = client.connect()
    client.close()
    assert code != 0, f"{why}: CONNACK {code}"


def test_certificates_that_are_not_a_nodes_are_refused(office: Office) -> None:
    """The broker's own certificate (serverAuth only) and a node certificate of another CA."""
    broker = Client(
        None,
        None,
        office.tls_port,
        ca=office.pki.ca_cert,
        cert=office.folder / "broker.crt",
        key=office.folder / "broker.key",
        host="localhost",
    )
    assert broker.connect() != 0, "the broker's server certificate is no client certificate"
    broker.close()
    other = OfficePki(readable_tmpdir("waitroom-other-office-"), "other")
    other.node("disp-1")
    foreign = Client(
        "disp-1",
        office.passwords["disp-1"],
        office.tls_port,
        ca=office.pki.ca_cert,
        cert=other.folder / "nodes/disp-1.crt",
        key=other.folder / "nodes/disp-1.key",
        host="localhost",
    )
    assert foreign.connect() != 0, "another CA's disp-1"
    foreign.close()
    shutil.rmtree(other.folder, ignore_errors=True)


def test_the_local_listener_still_needs_the_password(office: Office) -> None:
    wrong = Client(CONTROLLER_NODE_ID, "not-the-password", office.local_port)
    assert wrong.connect() in (134, 135)
    wrong.close()


# ------------------------------------------------------------------------------ making the certificates
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_node_certificates_one_per_account_keys_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every account of the office (a web worker's ``web.2`` too) gets CN = its name; every key is 0600 from
    its first byte (a umask of 0 would have made it world-readable until the chmod)."""
    cfg = office_config(1883, office_id="nc")
    web = next(n for n in cfg.nodes if n.role == "web")
    cfg = cfg.model_copy(
        update={"nodes": [n if n is not web else web.model_copy(update={"workers": 2}) for n in cfg.nodes]}
    )
    pki = OfficePki(tmp_path / "pki", "nc")
    pki.ensure_ca()
    seen: list[int] = []
    real_run = subprocess.run

    def run(cmd, *a, **kw):  # the key file's mode at the moment openssl writes it
        if "genpkey" in cmd:
            seen.append(_mode(Path(cmd[cmd.index("-out") + 1])))
        return real_run(cmd, *a, **kw)

    old_umask = os.umask(0)
    try:
        monkeypatch.setattr(subprocess, "run", run)
        done = pki.node_certificates([a.user for a in gen.accounts(cfg)])
    finally:
        os.umask(old_umask)
        monkeypatch.undo()
    assert set(done) == {a.user for a in gen.accounts(cfg)} and "web.2" in done
    assert set(done.values()) == {"written"} and seen and set(seen) == {0o600}
    for account in done:
        assert common_name(pki.folder / f"nodes/{account}.crt") == account
        assert _mode(pki.folder / f"nodes/{account}.key") == 0o600
    assert _mode(pki.folder / "nodes") == 0o700
    again = pki.node_certificates(list(done))
    assert set(again.values()) == {"unchanged"}


def test_node_certificates_take_the_operators_and_never_make_a_ca(tmp_path: Path) -> None:
    """Without ca.key (the city's own PKI) valid certificates are taken as they are, and a wrong one is an
    error naming the file; nothing makes a new CA over the operator's ca.crt."""
    pki = OfficePki(tmp_path / "pki", "op")
    with pytest.raises(CertificateError, match=r"ca\.crt is missing"):
        pki.node_certificates(["disp-1"])
    assert not pki.ca_key.exists(), "no CA of its own"
    pki.ensure_ca()
    pki.node_certificates(["disp-1", "counter-1"])
    shutil.copy(pki.folder / "nodes/counter-1.crt", pki.folder / "nodes/disp-1.crt")  # a mix-up
    key = pki.ca_key.read_bytes()
    pki.ca_key.unlink()
    with pytest.raises(CertificateError) as err:
        pki.node_certificates(["disp-1", "counter-1"])
    assert "disp-1: disp-1.crt is issued to CN='counter-1', not to 'disp-1'" in str(err.value)
    assert "counter-1:" not in str(err.value)
    assert pki.node_certificates(["counter-1"]) == {"counter-1": "unchanged"}
    pki.ca_key.write_bytes(key)  # with the CA key here, the mix-up is issued again
    assert pki.node_certificates(["disp-1"]) == {"disp-1": "written"}
    assert common_name(pki.folder / "nodes/disp-1.crt") == "disp-1"


def test_broker_node_certs_command(tmp_path: Path) -> None:
    from tests.conftest import ROOT

    example = ROOT / "ansible/inventory/example/office.yaml"
    pki = OfficePki(tmp_path / "pki", "mitte")
    pki.ensure_ca()
    cmd = [sys.executable, "-m", "waitroom", "broker", "node-certs", "--config", str(example), "--out"]
    first = subprocess.run([*cmd, str(pki.folder)], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert f"{pki.folder}/nodes/disp-1: written" in first.stdout.splitlines()
    assert "BEGIN" not in first.stdout + first.stderr, "no key material in the output"
    second = subprocess.run([*cmd, str(pki.folder)], capture_output=True, text=True, timeout=120)
    # every account, and the office CA's revocation list (made empty by the first run)
    assert second.stdout.count(": unchanged") == len(gen.accounts(config.load(example))) + 1
    assert f"{pki.folder}/crl.pem: unchanged" in second.stdout
    missing = subprocess.run([*cmd, str(tmp_path / "none")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "ca.crt is missing" in missing.stderr


def test_broker_certs_never_makes_a_new_ca_over_half_of_one(tmp_path: Path) -> None:
    """With ca.crt but no ca.key (the key kept off this machine, as the docs advise) `broker certs` made a
    new office CA over the old one and said "written": the new broker certificate, deployed, is refused by
    every node. Half a CA is now one error naming the missing file, and nothing is written."""
    from tests.conftest import ROOT

    example = ROOT / "ansible/inventory/example/office.yaml"
    folder = tmp_path / "pki"
    cmd = [
        sys.executable,
        "-m",
        "waitroom",
        "broker",
        "certs",
        "--config",
        str(example),
        "--out",
        str(folder),
    ]
    first = subprocess.run(
        [*cmd, "--broker-host", "broker.local"], capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stderr
    files = ("ca.crt", "ca.key", "broker.crt", "broker.key")
    before = {name: (folder / name).read_bytes() for name in files}
    for missing in ("ca.key", "ca.crt"):
        (folder / missing).unlink()
        again = [*cmd, "--broker-host", "broker.local", "--broker-host", "10.0.0.5"]  # a new name: reissue
        proc = subprocess.run(again, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and not proc.stdout, proc.stdout
        assert f"{folder / missing} is missing" in proc.stderr and "Traceback" not in proc.stderr
        assert {n: (folder / n).read_bytes() for n in files if n != missing} == {
            n: b for n, b in before.items() if n != missing
        }, f"without {missing} nothing is written"
        (folder / missing).write_bytes(before[missing])


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["certs", "--broker-host", "b.local", "--days", "0"], 2, "--days: 0 days: a certificate is renewed"),
        (["certs", "--broker-host", "b.local", "--days", "30"], 2, "give more than 30"),
        (["node-certs", "--days", "many"], 2, "--days: 'many' is not a whole number of days"),
        (
            ["certs", "--broker-host", "b.local", "--out", "FILE"],
            1,
            "FILE is a file, not a folder (check --out)",
        ),
        (["acl", "--out", "FILE/acl"], 1, "FILE is a file, not a folder (check --out)"),
        (["config", "--out", "/proc/nowhere/mosquitto.conf"], 1, "cannot use /proc/nowhere: No such file"),
    ],
)
def test_bad_arguments_of_the_broker_commands_are_one_error(
    tmp_path: Path, args: list[str], code: int, said: str
) -> None:
    """`broker certs --days 0` wrote a broker certificate that had expired when it was made (every node
    refuses it), and one of 30 days or less was due at once and reissued on every run; an --out that is a
    file, or a folder that cannot be made, ended in a FileExistsError traceback."""
    from tests.conftest import ROOT

    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    folder = tmp_path / "pki"
    args = [str(afile) if a == "FILE" else a.replace("FILE/", f"{afile}/") for a in args]
    if "--out" not in args:
        args += ["--out", str(folder)]
    said = said.replace("FILE", str(afile))
    cmd = [
        sys.executable,
        "-m",
        "waitroom",
        "broker",
        args[0],
        "--config",
        str(ROOT / "ansible/inventory/example/office.yaml"),
    ]
    proc = subprocess.run([*cmd, *args[1:]], capture_output=True, text=True, timeout=120)
    assert proc.returncode == code and said in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not proc.stdout
    assert not folder.exists() and afile.read_text() == "mine\n", "nothing written"


def test_a_ca_that_ends_soon_signs_nothing_more(tmp_path: Path) -> None:
    """`broker certs` signed new certificates with an office CA that had ended (or was about to): they are
    refused with it by every node and the broker, and the command said "written". Now it says the CA
    ends and what to do, and writes nothing."""
    pki = OfficePki(tmp_path / "pki", "old", ca_days=10)  # within renew_days (30) of its end
    pki.ensure_ca()
    with pytest.raises(CertificateError, match=r"the office CA .*ca\.crt ends on .*Make a new CA"):
        pki.broker(["broker.local"])
    assert not (pki.folder / "broker.crt").exists() and not (pki.folder / "broker.key").exists()


def test_a_failed_signing_keeps_the_old_key_and_certificate(tmp_path: Path) -> None:
    """The new key replaced the old one before the certificate was signed: a signing that failed (here a
    ca.crt that does not belong to ca.key) left the new key beside the old certificate, a pair the broker
    cannot use, and the next run called it unchanged. Both are now replaced together or not at all."""
    pki = OfficePki(tmp_path / "pki", "sign")
    pki.broker(["broker.local"])
    key, cert = (pki.folder / "broker.key").read_bytes(), (pki.folder / "broker.crt").read_bytes()
    other = OfficePki(tmp_path / "other", "other")
    other.ensure_ca()
    shutil.copy(other.ca_cert, pki.ca_cert)
    with pytest.raises(CertificateError, match="openssl x509 failed"):
        pki.broker(["broker.local", "10.0.0.5"])
    assert (pki.folder / "broker.key").read_bytes() == key
    assert (pki.folder / "broker.crt").read_bytes() == cert
    assert sorted(p.name for p in pki.folder.iterdir() if p.name.startswith(".")) == [], "no leftovers"


def test_broker_passwords_completes_its_file_and_names_an_encrypted_one(tmp_path: Path) -> None:
    """docs/deployment.md: a new node gets a password and the others keep theirs. The file once told to
    encrypt it with ansible-vault; run again on the encrypted file, the command said only 'expected a mapping
    of node id -> password'."""
    from tests.conftest import ROOT

    example = ROOT / "ansible/inventory/example/office.yaml"
    out = tmp_path / "mqtt-passwords.yaml"
    cmd = [
        sys.executable,
        "-m",
        "waitroom",
        "broker",
        "passwords",
        "--config",
        str(example),
        "--out",
        str(out),
    ]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=120).returncode == 0
    first = yaml.safe_load(out.read_text())
    data = yaml.safe_load(example.read_text())
    data["nodes"].append({"id": "counter-5", "role": "counter", "counter": "c5"})
    bigger = tmp_path / "office.yaml"
    bigger.write_text(yaml.safe_dump(data, allow_unicode=True))
    cmd[cmd.index(str(example))] = str(bigger)
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=120).returncode == 0
    second = yaml.safe_load(out.read_text())
    assert {k: v for k, v in second.items() if k != "counter-5"} == first and second["counter-5"]
    (tmp_path / "vault-pass").write_text("qa\n")
    vault = [str(Path(sys.executable).parent / "ansible-vault"), "encrypt", "--vault-password-file"]
    subprocess.run(
        [*vault, str(tmp_path / "vault-pass"), str(out)],
        capture_output=True,
        check=True,
        timeout=120,
    )
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "ansible-vault decrypt" in refused.stderr, refused.stderr
    assert out.read_text().startswith("$ANSIBLE_VAULT"), "the encrypted file is left as it was"


# ------------------------------------------------------------------------------ the node's configuration
@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ({"ca": "/ca.crt", "cert": "/x/{node}.crt"}, "cert and key go together"),
        ({"ca": "/ca.crt", "key": "/x/{node}.key"}, "cert and key go together"),
        ({"ca": "/ca.crt", "cert": "/x/{id}.crt", "key": "/x/{node}.key"}, "the only placeholder is {node}"),
    ],
)
def test_the_certificate_settings_are_checked(tmp_path: Path, tls: dict[str, str], message: str) -> None:
    import yaml

    from tests.conftest import ROOT

    data = yaml.safe_load((ROOT / "ansible/inventory/example/office.yaml").read_text())
    data["broker"]["tls"] = tls
    path = tmp_path / "office.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert "broker.tls" in str(err.value) and message in str(err.value)


def test_a_missing_certificate_file_is_a_configuration_error(tmp_path: Path) -> None:
    """paho would fail later with a bare ssl error; the node says which setting and which file."""
    cfg = office_config(free_port(), office_id="nf")
    tls = config.Tls(
        ca=str(tmp_path / "ca.crt"), cert=f"{tmp_path}/{{node}}.crt", key=f"{tmp_path}/{{node}}.key"
    )
    broker = cfg.broker.model_copy(update={"tls": tls})
    with pytest.raises(ConfigError) as err:
        MqttLink(broker, "nf", "counter-1", cfg.role_of("counter-1"), password="")
    assert "broker.tls.cert" in str(err.value) and f"{tmp_path}/counter-1.crt" in str(err.value)


def test_a_node_reports_when_its_certificate_and_the_brokers_end_and_the_admin_page_warns(
    office: Office,
) -> None:
    """Every node says in its health when its client certificate ends, and the broker's as the node saw it at
    the handshake. A certificate that ends within 30 days (when `waitroom broker node-certs` renews it) is a
    warning on the node's line and one alarm for the office; mosquitto would refuse the node after it."""
    from waitroom.web import health

    # counter-4's certificate is issued anew by the office CA, valid for 10 days only
    for old in ("counter-4.crt", "counter-4.key"):
        (office.folder / "nodes" / old).unlink()
    assert OfficePki(office.folder, office.cfg.office.id, days=10).node("counter-4")
    ends_soon = round(not_after(office.folder / "nodes/counter-4.crt").timestamp())
    broker_ends = round(not_after(office.folder / "broker.crt").timestamp())
    assert ends_soon - time.time() < 11 * 86400 < broker_ends - time.time()

    records: dict[str, dict] = {}

    def health_of(client, userdata, msg) -> None:  # paho's thread
        record = json.loads(msg.payload)
        if "broker_cert_until" in record:  # after the TLS handshake
            records[record["node"]] = record

    watcher = Client(CONTROLLER_NODE_ID, office.passwords[CONTROLLER_NODE_ID], office.local_port)
    topic = Topics(office.cfg.office.id).all_nodes("health")
    watcher.c.message_callback_add(topic, health_of)
    assert watcher.connect() == 0
    watcher.subscribe([topic])
    cfg = tls_cfg(office)
    nodes = [NodeRuntime(cfg, n, password="") for n in ("counter-3", "counter-4")]
    try:
        for rt in nodes:
            assert rt.start(wait=10), rt.node_id
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not {"counter-3", "counter-4"} <= set(records):
            time.sleep(0.05)
        assert {"counter-3", "counter-4"} <= set(records), records
    finally:
        for rt in nodes:
            rt.stop()
        watcher.close()
    records = {n: records[n] for n in ("counter-3", "counter-4")}
    assert records["counter-4"]["cert_until"] == ends_soon
    assert records["counter-3"]["cert_until"] > ends_soon + 700 * 86400  # the office's normal 825 days
    assert {r["broker_cert_until"] for r in records.values()} == {broker_ends}

    lines = {ln.key: ln for ln in health.describe(office.cfg, "de", records["counter-4"])}
    assert lines["cert_until"].warn and "node-certs" in lines["cert_until"].value
    assert not lines["broker_cert_until"].warn and lines["broker_cert_until"].value.startswith("gültig bis")
    fine = {ln.key: ln for ln in health.describe(office.cfg, "en", records["counter-3"])}
    assert not fine["cert_until"].warn and fine["cert_until"].value.startswith("valid until")

    alarm = health.certificate_alarm(office.cfg, "de", records, time.time())
    assert alarm is not None and alarm.code == "certificate_ending"
    assert "counter-4" in alarm.text and "counter-3" not in alarm.text
    fine_only = {"counter-3": records["counter-3"]}
    assert health.certificate_alarm(office.cfg, "de", fine_only, time.time()) is None
    # ended: said so, and a record from an older node (no such field) has no line
    ended = health.describe(office.cfg, "de", {**records["counter-4"], "cert_until": ends_soon - 11 * 86400})
    assert any(ln.key == "cert_until" and ln.warn and "abgelaufen" in ln.value for ln in ended)
    assert not any(ln.key == "cert_until" for ln in health.describe(office.cfg, "de", {"status": "ok"}))
