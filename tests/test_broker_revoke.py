"""Revoking a lost node's certificate: ``waitroom broker revoke``, the office CA's revocation list
(``crl.pem``) and a real mosquitto that checks it (``crlfile``).

Each broker here requires client certificates and checks them against the CRL, as the broker role deploys
it. Whether the broker lets a certificate in is asked over a raw TLS connection that sends an MQTT CONNECT:
a refused certificate ends in a TLS error before any CONNACK.
"""

from __future__ import annotations

import datetime as dt
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mqtt_broker import office as gen
from mqtt_broker.pki import (
    CertificateError,
    OfficePki,
    common_name,
    crl_next_update,
    revoked_serials,
    serial,
)
from tests.conftest import ROOT, office_config, require_tool
from tests.test_broker_acl import Client, Office, readable_tmpdir, start_office_broker

# MQTT 3.1.1 CONNECT with an empty client id and a clean session; the broker takes the id from the login.
CONNECT = bytes.fromhex("100c00044d5154540402003c0000")
CONNACK_OK = bytes.fromhex("20020000")


@pytest.fixture
def office() -> Iterator[Office]:
    require_tool("mosquitto", "mosquitto", "/usr/sbin/mosquitto")
    require_tool("openssl", "openssl")
    folder = readable_tmpdir("waitroom-broker-revoke-")
    o = start_office_broker(folder, office_id="revoke", require_certificate=True, crl=True)
    try:
        yield o
    finally:
        o.broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


def login(office: Office, cert: Path, key: Path) -> str:
    """ "connected" when the broker answers the certificate's CONNECT with CONNACK 0; "tls: ..." when the
    TLS handshake refuses the certificate (the broker closes before any MQTT byte); else what came."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(office.pki.ca_cert))
    ctx.load_cert_chain(str(cert), str(key))
    with socket.create_connection(("localhost", office.tls_port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(CONNECT)
                answer = tls.recv(4)
        except (ssl.SSLError, ConnectionResetError) as exc:
            return f"tls: {exc}"
    return "connected" if answer == CONNACK_OK else f"mqtt: {answer.hex()}"


def login_as(office: Office, account: str) -> str:
    nodes = office.folder / "nodes"
    return login(office, nodes / f"{account}.crt", nodes / f"{account}.key")


def restart(office: Office) -> None:
    """What the broker role's handler does when crl.pem changes."""
    office.broker.stop()
    office.broker.start()


def reload(office: Office, probe: tuple[Path, Path]) -> None:
    """SIGHUP (systemctl reload), then logins with ``probe``, a certificate revoked in the new list, until
    the broker refuses it: then it has reloaded (it logs that only at level info). The probe is another
    node's certificate: a login that succeeds before the reload takes over only that node's session."""
    assert office.broker.proc is not None
    office.broker.proc.send_signal(signal.SIGHUP)
    for _ in range(500):
        if login(office, *probe).startswith("tls:"):
            return
    raise AssertionError("mosquitto did not reload the revocation list on SIGHUP")


def accounts(office: Office) -> list[str]:
    return [a.user for a in gen.accounts(office.cfg)]


# ------------------------------------------------------------------------------------------------- tests
def test_with_no_revocation_yet_the_broker_checks_an_empty_list(office: Office) -> None:
    conf = (office.folder / "mosquitto.conf").read_text()
    node_listener = conf.split(f"listener {office.tls_port}")[1].split("\nlistener ")[0]
    assert f"crlfile {office.folder}/crl.pem" in node_listener
    assert revoked_serials(office.pki.crl) == set()
    log = office.broker.log_path.read_text()
    assert "arning" not in log and "rror" not in log, log
    for account in ("disp-1", "counter-1", "controller"):
        assert login_as(office, account) == "connected", account


def test_a_revoked_certificate_is_refused_and_the_node_gets_a_new_one(office: Office, tmp_path: Path) -> None:
    """disp-1's Pi is stolen with its key: revoked, the stolen certificate is refused at the TLS handshake
    (a connection it holds ends with the restart), the other nodes connect, and the replacement Pi's new
    certificate for disp-1 (node-certs, the node is still in the office) connects."""
    nodes = office.folder / "nodes"
    stolen = (tmp_path / "disp-1.crt", tmp_path / "disp-1.key")
    probe = (tmp_path / "sb-1.crt", tmp_path / "sb-1.key")
    for path in (*stolen, *probe):
        shutil.copy(nodes / path.name, path)
    thief = Client(
        None, None, office.tls_port, ca=office.pki.ca_cert, cert=stolen[0], key=stolen[1], host="localhost"
    )
    assert thief.connect() == 0
    try:
        number = office.pki.revoke("disp-1", "keyCompromise")
        assert number == serial(stolen[0]) and revoked_serials(office.pki.crl) == {number}
        assert not (nodes / "disp-1.crt").exists() and not (nodes / "disp-1.key").exists()
        assert (office.pki.revoked_dir / f"{number}.crt").read_bytes() == stolen[0].read_bytes()
        assert (
            "Key Compromise"
            in subprocess.run(
                ["openssl", "crl", "-in", str(office.pki.crl), "-noout", "-text"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )

        # A reload reads the new list: new logins with the stolen certificate are refused ...
        office.pki.revoke("sb-1", "superseded")
        reload(office, probe)
        answer = login(office, *stolen)
        assert answer.startswith("tls:"), answer
        # ... but mosquitto checks the list only at the handshake: the thief's connection is still up
        # (why the broker role restarts mosquitto when the list changes).
        t = office.topics
        assert thief.publish_all([t.status("disp-1")])[t.status("disp-1")] < 128
        restart(office)
        answer = login(office, *stolen)
        assert answer.startswith("tls:"), answer
    finally:
        thief.close()
    for account in ("counter-1", "display-1", "controller", "web"):
        assert login_as(office, account) == "connected", account

    # node-certs gives the node still in the office a new key and certificate; the list stays as it is
    crl_before = office.pki.crl.read_bytes()
    done = office.pki.node_certificates(accounts(office))
    assert {k for k, v in done.items() if v == "written"} == {"disp-1", "sb-1"}
    assert office.pki.ensure_crl() is False and office.pki.crl.read_bytes() == crl_before
    assert serial(nodes / "disp-1.crt") != number and common_name(nodes / "disp-1.crt") == "disp-1"
    assert login_as(office, "disp-1") == "connected"
    assert login(office, *stolen).startswith("tls:")


def test_a_revoked_certificate_put_back_is_issued_anew(office: Office, tmp_path: Path) -> None:
    """A backup of nodes/ restored after a revocation brings the revoked certificate back: node-certs sees
    it in the list and issues a new one instead of keeping it."""
    nodes = office.folder / "nodes"
    shutil.copy(nodes / "counter-1.crt", tmp_path / "counter-1.crt")
    shutil.copy(nodes / "counter-1.key", tmp_path / "counter-1.key")
    number = office.pki.revoke("counter-1")
    shutil.copy(tmp_path / "counter-1.crt", nodes / "counter-1.crt")
    shutil.copy(tmp_path / "counter-1.key", nodes / "counter-1.key")
    assert "is revoked" in office.pki.node_problem("counter-1", {number})
    assert office.pki.node_certificates(["counter-1"]) == {"counter-1": "written"}
    assert serial(nodes / "counter-1.crt") != number
    restart(office)
    assert login_as(office, "counter-1") == "connected"


def _gencrl(pki: OfficePki, last: dt.datetime, until: dt.datetime) -> None:
    stamp = "%Y%m%d%H%M%SZ"
    pki._openssl_ca(
        "-gencrl",
        *("-crl_lastupdate", last.strftime(stamp), "-crl_nextupdate", until.strftime(stamp)),
        *("-out", str(pki.crl)),
    )
    pki.crl.chmod(0o644)


def test_a_crl_about_to_expire_is_renewed_before_the_broker_refuses_everyone(office: Office) -> None:
    """An expired list makes mosquitto refuse every certificate (not only revoked ones); node-certs renews a
    list that expires within 30 days, so a deployment never ships one that runs out before the next."""
    pki, now = office.pki, dt.datetime.now(dt.UTC)
    pki.revoke("sb-1")

    # 1. expired: every node is refused
    _gencrl(pki, now - dt.timedelta(days=40), now - dt.timedelta(hours=1))
    restart(office)
    for account in ("counter-1", "disp-1", "controller"):
        answer = login_as(office, account)
        assert answer.startswith("tls:"), (account, answer)

    # 2. expiring in 10 days: still accepted, but what node-certs does (tests/test_broker_revoke_command
    # runs the command) renews it for crl_days, the revocation kept
    _gencrl(pki, now - dt.timedelta(days=800), now + dt.timedelta(days=10))
    restart(office)
    assert login_as(office, "counter-1") == "connected"
    assert "expires on" in pki.crl_problem()
    done = pki.node_certificates(accounts(office))
    assert done["sb-1"] == "written" and pki.ensure_crl() is True
    assert crl_next_update(pki.crl) - dt.datetime.now(dt.UTC) > dt.timedelta(days=pki.crl_days - 1)
    assert revoked_serials(pki.crl) == pki.revoked_in_database() != set(), "the revocation is kept"
    assert pki.ensure_crl() is False, "renewed once, then unchanged"

    # 3. the same for the expired list: renewed, and after the restart every node is back
    _gencrl(pki, now - dt.timedelta(days=40), now - dt.timedelta(hours=1))
    assert pki.ensure_crl() is True
    restart(office)
    for account in ("counter-1", "disp-1", "controller", "sb-1"):
        assert login_as(office, account) == "connected", account


# ------------------------------------------------------------------------------------------ the commands
def _waitroom(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "waitroom", "broker", *args], capture_output=True, text=True, timeout=120
    )


def test_broker_revoke_command(tmp_path: Path) -> None:
    """`waitroom broker revoke NODE`: every account of the node (a web node's workers too), the reason in the
    list, one clear error for a second revocation, an unknown reason and a folder without ca.key."""
    data = yaml.safe_load((ROOT / "ansible/inventory/example/office.yaml").read_text())
    web = next(n for n in data["nodes"] if n["role"] == "web")
    web["workers"] = 2
    office_yaml = tmp_path / "office.yaml"
    office_yaml.write_text(yaml.safe_dump(data, allow_unicode=True))
    pki = OfficePki(tmp_path / "pki", "mitte")
    pki.ensure_ca()
    out = str(pki.folder)
    made = _waitroom("node-certs", "--config", str(office_yaml), "--out", out)
    assert made.returncode == 0, made.stderr
    assert f"{out}/crl.pem: written" in made.stdout, "an empty list from the start"

    revoked = _waitroom("revoke", "web", "--config", str(office_yaml), "--out", out, "--reason", "superseded")
    assert revoked.returncode == 0, revoked.stderr
    assert f"{out}/nodes/web.crt: revoked (superseded" in revoked.stdout
    assert f"{out}/nodes/web.2.crt: revoked (superseded" in revoked.stdout
    assert f"{out}/crl.pem: written (valid until" in revoked.stdout
    assert "BEGIN" not in revoked.stdout + revoked.stderr, "no key material in the output"
    assert len(revoked_serials(pki.crl)) == 2

    again = _waitroom("revoke", "web", "--config", str(office_yaml), "--out", out)
    assert again.returncode == 1 and "nodes/web.crt is missing" in again.stderr
    bad = _waitroom("revoke", "disp-1", "--config", str(office_yaml), "--out", out, "--reason", "stolen")
    assert bad.returncode == 2 and "invalid choice: 'stolen'" in bad.stderr
    assert (pki.folder / "nodes/disp-1.crt").exists(), "nothing revoked on a bad reason"

    renewed = _waitroom("node-certs", "--config", str(office_yaml), "--out", out)
    assert f"{out}/nodes/web: written" in renewed.stdout and f"{out}/nodes/web.2: written" in renewed.stdout
    assert f"{out}/crl.pem: unchanged" in renewed.stdout

    now = dt.datetime.now(dt.UTC)  # a list that runs out in 10 days is renewed by the next deployment
    _gencrl(pki, now - dt.timedelta(days=815), now + dt.timedelta(days=10))
    before = dt.datetime.now(dt.UTC) + dt.timedelta(days=pki.crl_days)
    soon = _waitroom("node-certs", "--config", str(office_yaml), "--out", out)
    after = dt.datetime.now(dt.UTC) + dt.timedelta(days=pki.crl_days)
    renewal = {f"{out}/crl.pem: written (valid until {d:%Y-%m-%d})" for d in (before, after)}
    assert renewal & set(soon.stdout.splitlines()), soon.stdout + soon.stderr
    assert len(revoked_serials(pki.crl)) == 2

    key = pki.ca_key.read_bytes()
    pki.ca_key.unlink()
    no_key = _waitroom("revoke", "disp-1", "--config", str(office_yaml), "--out", out)
    assert no_key.returncode == 1 and "ca.key is missing" in no_key.stderr
    assert (pki.folder / "nodes/disp-1.crt").exists()
    pki.ca_key.write_bytes(key)


def test_without_the_ca_key_the_operators_list_is_checked_not_made(tmp_path: Path) -> None:
    """The city's own PKI (no ca.key): no list is made and none deployed; an operator's list that runs out
    within 30 days stops node-certs with the file's name (it cannot be renewed here)."""
    pki = OfficePki(tmp_path / "pki", "op")
    pki.ensure_ca()
    pki.node_certificates(["disp-1"])
    key = pki.ca_key.read_bytes()
    pki.ca_key.unlink()
    assert pki.ensure_crl() is None and not pki.crl.exists()
    pki.ca_key.write_bytes(key)
    now = dt.datetime.now(dt.UTC)
    _gencrl(pki, now - dt.timedelta(days=1), now + dt.timedelta(days=5))
    pki.ca_key.unlink()
    with pytest.raises(CertificateError) as err:
        pki.ensure_crl()
    assert str(pki.crl) in str(err.value) and "expires on" in str(err.value)
    foreign = OfficePki(tmp_path / "other", "other")
    foreign.ensure_ca()
    foreign.ensure_crl()
    shutil.copy(foreign.crl, pki.crl)
    with pytest.raises(CertificateError, match="not a revocation list signed by the office CA"):
        pki.ensure_crl()
    # revoke only what the office CA signed: another CA's certificate is refused with its name
    pki.ca_key.write_bytes(key)
    foreign.node("disp-1")
    shutil.copy(foreign.folder / "nodes/disp-1.crt", pki.folder / "nodes/disp-1.crt")
    with pytest.raises(CertificateError, match=r"nodes/disp-1\.crt is not signed by the office CA"):
        pki.revoke("disp-1")


def test_the_configuration_checks_a_list_only_when_it_requires_certificates() -> None:
    cfg = office_config(1883, office_id="crl")
    with_crl = gen.mosquitto_conf(cfg, gen.BrokerOptions(require_certificate=True, crl=True))
    assert "crlfile /etc/mosquitto/waitroom/crl.pem" in with_crl
    assert "crlfile" not in gen.mosquitto_conf(cfg, gen.BrokerOptions(require_certificate=True))
    with pytest.raises(gen.BrokerSetupError, match="--require-certificate"):
        gen.mosquitto_conf(cfg, gen.BrokerOptions(crl=True))
