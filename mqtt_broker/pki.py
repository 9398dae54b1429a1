"""A small certificate helper for one office: an office CA, the broker's server certificate and (optional)
client certificates per node, made with the ``openssl`` command line tool (Debian package openssl).

Keys are ECDSA P-256. Files in the output folder::

    ca.key ca.crt                 the office CA (keep ca.key on the admin machine, never on the fleet)
    broker.key broker.crt         the broker's certificate; its names (SAN) are the hosts nodes connect to
    nodes/<node>.key .crt         client certificates (CN = node id, the MQTT login when the broker
                                  requires certificates; `waitroom broker node-certs` makes or checks them)
    crl.pem                       the office CA's certificate revocation list (the broker's ``crlfile``),
                                  signed by ca.key, valid for ``crl_days``; made by `node-certs` (empty
                                  until a certificate is revoked), renewed within ``renew_days`` of its end
    revoked/                      ``openssl ca``'s database of revoked certificates (index.txt, crlnumber)
                                  and each revoked certificate as ``<serial>.crt`` (`waitroom broker revoke`)

Modes: every key is 0600 (owner only, from the moment the file is created), except ``broker.key``:
mosquitto drops root and reads it as user mosquitto, so it is 0640 with group ``mosquitto`` when that group
exists (on the broker host; Debian's mosquitto package creates it). Without the group (an admin machine) it
stays 0600 and Ansible installs it as 0640 root:mosquitto. Existing keys get these modes again on every run.

Existing files are kept (the CA is made once, never over half of one; a certificate is renewed when it is
missing, expires within ``renew_days`` or no longer carries the requested names, its key and certificate
replaced together), so running the command again changes nothing.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from waitroom.contract import check_account, check_id
from waitroom.errors import WaitroomError

log = logging.getLogger(__name__)


class CertificateError(WaitroomError, RuntimeError):
    """openssl is missing or failed to make a certificate."""


def openssl() -> str:
    path = shutil.which("openssl")
    if not path:
        raise CertificateError("openssl is not installed: apt-get install openssl")
    return path


def _run(*args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([openssl(), *args], input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CertificateError(f"openssl {args[0]} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


BROKER_GROUP = "mosquitto"


def _new_key(path: Path) -> None:
    """A new private key, created 0600: never readable by others, not even while openssl writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    path.chmod(0o600)


def share_with_group(path: Path, group: str = BROKER_GROUP) -> bool:
    """Make a key 0640 and owned by ``group`` if that group exists; else keep it 0600. True if shared."""
    import grp
    import os

    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        path.chmod(0o600)
        return False
    try:
        os.chown(path, -1, gid)
    except PermissionError:
        log.warning("cannot give %s to group %s: the broker will not be able to read it", path, group)
        path.chmod(0o600)
        return False
    path.chmod(0o640)
    return True


def san_entries(names: list[str]) -> list[str]:
    """``DNS:name`` or ``IP:address`` for each name."""
    out = []
    for name in names:
        try:
            out.append(f"IP:{ipaddress.ip_address(name)}")
        except ValueError:
            out.append(f"DNS:{name}")
    return out


def not_after(cert: Path) -> dt.datetime:
    text = _run("x509", "-in", str(cert), "-noout", "-enddate").strip()
    stamp = text.split("=", 1)[1]
    return dt.datetime.strptime(stamp, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=dt.UTC)


def common_name(cert: Path) -> str:
    """The CN of a certificate's subject ("" without one)."""
    text = _run("x509", "-in", str(cert), "-noout", "-subject", "-nameopt", "RFC2253").strip()
    for part in text.removeprefix("subject=").split(","):
        key, _, value = part.strip().partition("=")
        if key == "CN":
            return value
    return ""


def cert_names(cert: Path) -> set[str]:
    """The subject alternative names of a certificate, as ``DNS:x`` / ``IP:y``."""
    text = _run("x509", "-in", str(cert), "-noout", "-ext", "subjectAltName")
    names: set[str] = set()
    for line in text.splitlines()[1:]:
        for part in line.split(","):
            part = part.strip().replace("IP Address:", "IP:")
            if part:
                names.add(part)
    return names


@dataclass
class OfficePki:
    """The certificate folder of one office."""

    folder: Path
    office: str
    days: int = 825  # leaf certificates; browsers' and clients' upper bound for server certificates
    ca_days: int = 3650
    renew_days: int = 30
    # The CRL reaches the broker only by deployment (nothing fetches it), so a long validity costs no
    # freshness; what it must never do is expire between two deployments: mosquitto then refuses every
    # certificate. As long as a node certificate, and renewed with them (within renew_days of its end).
    crl_days: int = 825

    def __post_init__(self) -> None:
        check_id(self.office, "office")
        self.folder = Path(self.folder)

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def crl(self) -> Path:
        return self.folder / "crl.pem"

    @property
    def revoked_dir(self) -> Path:
        return self.folder / "revoked"

    def ensure_ca(self) -> bool:
        """Create the office CA unless it exists. Returns whether it was created. Half of one (ca.crt
        without ca.key: the key kept elsewhere, or the city's own CA; or the other way round) is an error:
        a new CA over it would make every node refuse the broker."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.ca_key.exists() and self.ca_cert.exists():
            self._check_ca_time()
            return False
        if self.ca_cert.exists():
            raise CertificateError(
                f"{self.ca_key} is missing next to {self.ca_cert}: put the office CA's key back to issue "
                "certificates (a new CA would make every node refuse the broker; with the city's own PKI, "
                "put its broker certificate and key there instead)"
            )
        if self.ca_key.exists():
            raise CertificateError(
                f"{self.ca_cert} is missing next to {self.ca_key}: put the office CA's certificate back, or "
                f"remove {self.ca_key.name} to make a new office CA (every node then needs the new ca.crt)"
            )
        _new_key(self.ca_key)
        _run(
            "req",
            "-x509",
            "-new",
            "-key",
            str(self.ca_key),
            "-sha256",
            "-days",
            str(self.ca_days),
            "-subj",
            f"/O=waitroom/OU={self.office}/CN=waitroom office CA {self.office}",
            "-addext",
            "basicConstraints=critical,CA:TRUE,pathlen:0",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            str(self.ca_cert),
        )
        self.ca_cert.chmod(0o644)
        log.info("created office CA %s", self.ca_cert)
        return True

    def _check_ca_time(self) -> None:
        """A CA that has ended, or ends within ``renew_days``, signs nothing more: what it signed would be
        refused with it (by every node and the broker), while the command said "written"."""
        end = not_after(self.ca_cert)
        left = end - dt.datetime.now(dt.UTC)
        if left < dt.timedelta(days=self.renew_days):
            when = "ended" if left.total_seconds() <= 0 else "ends"
            raise CertificateError(
                f"the office CA {self.ca_cert} {when} on {end:%Y-%m-%d}: certificates it signs would be "
                f"refused with it. Make a new CA (move {self.ca_cert.name} and {self.ca_key.name} away and "
                "run `waitroom broker certs` again), then deploy the new ca.crt and certificates to the "
                "broker and every node"
            )

    def _needs(self, cert: Path, key: Path, names: list[str]) -> bool:
        if not cert.exists() or not key.exists():
            return True
        if not_after(cert) - dt.datetime.now(dt.UTC) < dt.timedelta(days=self.renew_days):
            return True
        return bool(names) and cert_names(cert) != set(san_entries(names))

    def issue(self, name: str, common_name: str, names: list[str], usage: str) -> bool:
        """Issue ``<name>.crt/.key`` signed by the CA unless a valid one exists; True if it was made."""
        self.ensure_ca()
        cert, key = self.folder / f"{name}.crt", self.folder / f"{name}.key"
        if not self._needs(cert, key, names):
            return False
        cert.parent.mkdir(parents=True, exist_ok=True)
        ext = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyAgreement",
            f"extendedKeyUsage={usage}",
        ]
        if names:
            ext.append("subjectAltName=" + ",".join(san_entries(names)))
        # The new key and certificate are made beside the old ones and replace them only when both are
        # there: a signing that fails (ca.crt not matching ca.key, an interruption) left a new key beside
        # the old certificate, a pair no broker or node can use, which the next run called unchanged.
        with tempfile.TemporaryDirectory(dir=cert.parent, prefix=".new-") as tmp:
            csr, extfile = Path(tmp) / "req.csr", Path(tmp) / "ext.cnf"
            new_key, new_cert = Path(tmp) / key.name, Path(tmp) / cert.name
            _new_key(new_key)
            extfile.write_text("\n".join(ext) + "\n")
            _run(
                "req",
                "-new",
                "-key",
                str(new_key),
                "-subj",
                f"/O=waitroom/OU={self.office}/CN={common_name}",
                "-out",
                str(csr),
            )
            _run(
                "x509",
                "-req",
                "-in",
                str(csr),
                "-CA",
                str(self.ca_cert),
                "-CAkey",
                str(self.ca_key),
                "-CAcreateserial",
                "-sha256",
                "-days",
                str(self.days),
                "-extfile",
                str(extfile),
                "-out",
                str(new_cert),
            )
            new_cert.chmod(0o644)
            new_key.replace(key)
            new_cert.replace(cert)
        log.info("issued %s for %s", cert, common_name)
        return True

    def broker(self, hosts: list[str]) -> bool:
        """The broker's server certificate for the host names and addresses nodes connect to."""
        if not hosts:
            raise CertificateError("the broker certificate needs at least one host name (--broker-host)")
        made = self.issue("broker", hosts[0], hosts, "serverAuth")
        share_with_group(self.folder / "broker.key")
        return made

    def node(self, node_id: str) -> bool:
        """A client certificate for one MQTT account (CN = node id = MQTT user name; a web worker's
        account ``web.2`` gets its own, because the broker makes the CN the user name and client id)."""
        check_account(node_id)
        (self.folder / "nodes").mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.issue(f"nodes/{node_id}", node_id, [], "clientAuth")

    def node_problem(self, account: str, revoked: set[str] | None = None) -> str:
        """Why ``nodes/<account>.crt/.key`` cannot be used as they are ("" if they can): missing, not
        signed by this office's CA, revoked (its serial in ``revoked``), another CN, expiring within
        ``renew_days``."""
        cert, key = self.folder / f"nodes/{account}.crt", self.folder / f"nodes/{account}.key"
        if not cert.exists() or not key.exists():
            return f"{cert.name} or {key.name} is missing"
        try:
            verify(self.ca_cert, cert)
        except CertificateError:
            return f"{cert.name} is not signed by the office CA {self.ca_cert}"
        if revoked and serial(cert) in revoked:
            return f"{cert.name} is revoked ({self.crl.name} lists its serial {serial(cert)})"
        cn = common_name(cert)
        if cn != account:
            return f"{cert.name} is issued to CN={cn!r}, not to {account!r}"
        if not_after(cert) - dt.datetime.now(dt.UTC) < dt.timedelta(days=self.renew_days):
            return f"{cert.name} expires within {self.renew_days} days"
        return ""

    def node_certificates(self, accounts: list[str]) -> dict[str, str]:
        """One client certificate per account, never a new CA: a valid certificate already in
        ``nodes/`` (made here before, or put there by the operator from the city's own PKI) is kept; a
        missing or unusable one is issued when the CA key is here, else it is an error naming each file.
        Returns account -> "written" / "unchanged"."""
        if not self.ca_cert.exists():
            raise CertificateError(
                f"{self.ca_cert} is missing: make the office CA with `waitroom broker certs` or put the "
                "operator's CA certificate there"
            )
        out: dict[str, str] = {}
        problems = []
        revoked = self.revoked_in_database() | (revoked_serials(self.crl) if self.crl.exists() else set())
        for account in accounts:
            check_account(account)
            problem = self.node_problem(account, revoked)
            if not problem:
                out[account] = "unchanged"
            elif self.ca_key.exists():
                if (self.folder / f"nodes/{account}.crt").exists():
                    log.info("renewing the certificate of %s: %s", account, problem)
                    (self.folder / f"nodes/{account}.crt").unlink()
                self.node(account)
                out[account] = "written"
            else:
                problems.append(f"{account}: {problem}")
        if problems:
            raise CertificateError(
                f"node certificates in {self.folder / 'nodes'} (no {self.ca_key.name} here to make them): "
                + "; ".join(problems)
            )
        return out

    # ------------------------------------------------------------------------------------- revocation
    def _openssl_ca(self, *args: str) -> str:
        """``openssl ca`` on this office's revocation database (``revoked/index.txt``), signing with ca.key.
        Only revocations and CRLs are made this way; certificates are issued by ``issue``."""
        if not self.ca_key.exists():
            raise CertificateError(
                f"{self.ca_key} is missing: the revocation list is signed by the office CA's key (with the "
                f"city's own PKI, revoke at that CA and put its CRL into {self.crl})"
            )
        self.revoked_dir.mkdir(parents=True, exist_ok=True)
        index, number = self.revoked_dir / "index.txt", self.revoked_dir / "crlnumber"
        if not index.exists():
            index.touch()
        if not number.exists():
            number.write_text("01\n")
        with tempfile.TemporaryDirectory() as tmp:
            conf = Path(tmp) / "ca.cnf"
            conf.write_text(
                "[ca]\ndefault_ca = office\n[office]\n"
                f"database = {index}\ncrlnumber = {number}\n"
                f"certificate = {self.ca_cert}\nprivate_key = {self.ca_key}\n"
                "default_md = sha256\nunique_subject = no\n"
            )
            return _run("ca", "-config", str(conf), *args)

    def _write_crl(self) -> None:
        with tempfile.TemporaryDirectory(dir=self.folder) as tmp:
            out = Path(tmp) / "crl.pem"
            self._openssl_ca("-gencrl", "-crldays", str(self.crl_days), "-out", str(out))
            out.chmod(0o644)
            out.replace(self.crl)
        log.info("wrote %s (valid until %s)", self.crl, crl_next_update(self.crl).date())

    def revoked_in_database(self) -> set[str]:
        """The serials (upper-case hex) that ``revoked/index.txt`` marks as revoked."""
        index = self.revoked_dir / "index.txt"
        if not index.exists():
            return set()
        rows = [line.split("\t") for line in index.read_text().splitlines()]
        return {row[3].upper() for row in rows if len(row) > 3 and row[0] == "R"}

    def crl_problem(self) -> str:
        """Why ``crl.pem`` cannot go to the broker as it is ("" if it can): missing, not signed by the
        office CA, expiring within ``renew_days`` (an expired CRL makes mosquitto refuse every client
        certificate), or missing a revocation of the database."""
        if not self.crl.exists():
            return f"{self.crl.name} is missing"
        try:
            _run("crl", "-in", str(self.crl), "-CAfile", str(self.ca_cert), "-noout")
        except CertificateError:
            return f"{self.crl.name} is not a revocation list signed by the office CA {self.ca_cert}"
        end = crl_next_update(self.crl)
        if end - dt.datetime.now(dt.UTC) < dt.timedelta(days=self.renew_days):
            return f"{self.crl.name} expires on {end:%Y-%m-%d %H:%M} UTC (within {self.renew_days} days)"
        missing = self.revoked_in_database() - revoked_serials(self.crl)
        if missing:
            return f"{self.crl.name} lacks revoked serials {', '.join(sorted(missing))}"
        return ""

    def ensure_crl(self) -> bool | None:
        """Make or renew ``crl.pem`` when it has a problem (see ``crl_problem``); True if it was written.
        Without ca.key an operator's CRL is checked only: a problem is an error naming the file; with
        neither ca.key nor crl.pem (the city's PKI without a CRL) there is none to deploy: None."""
        if not self.ca_key.exists() and not self.crl.exists():
            return None
        problem = self.crl_problem()
        if not problem:
            return False
        if not self.ca_key.exists():
            raise CertificateError(
                f"{self.crl}: {problem}; without {self.ca_key.name} here it cannot be renewed: put a fresh "
                "CRL of the CA that issued ca.crt there (or remove the file to deploy no revocation list)"
            )
        if self.crl.exists():
            log.info("renewing %s: %s", self.crl, problem)
        self._write_crl()
        return True

    def revoke(self, account: str, reason: str = "keyCompromise") -> str:
        """Revoke the current certificate of ``account`` (``nodes/<account>.crt``) in the office CA's
        database and write a new ``crl.pem``. The certificate moves to ``revoked/<serial>.crt`` and its
        key is deleted, so ``node_certificates`` issues the account a new key and certificate. Returns the
        serial."""
        check_account(account)
        if reason not in REVOCATION_REASONS:
            known = ", ".join(REVOCATION_REASONS)
            raise CertificateError(f"unknown revocation reason {reason!r} (known: {known})")
        cert, key = self.folder / f"nodes/{account}.crt", self.folder / f"nodes/{account}.key"
        if not cert.exists():
            raise CertificateError(
                f"{cert} is missing: {account} has no certificate here to revoke (revoked ones are kept in "
                f"{self.revoked_dir})"
            )
        try:
            verify(self.ca_cert, cert)
        except CertificateError:
            raise CertificateError(
                f"{cert} is not signed by the office CA {self.ca_cert}: revoke it at the CA that issued it"
            ) from None
        number = serial(cert)
        if number not in self.revoked_in_database():
            self._openssl_ca("-revoke", str(cert), "-crl_reason", reason)
        self._write_crl()
        self.revoked_dir.mkdir(parents=True, exist_ok=True)
        cert.replace(self.revoked_dir / f"{number}.crt")
        key.unlink(missing_ok=True)
        log.info("revoked %s of %s (%s)", number, account, reason)
        return number


# RFC 5280 reasons that fit a node (certificateHold, which can be undone, and the CA reasons are left out).
REVOCATION_REASONS = (
    "keyCompromise",
    "superseded",
    "cessationOfOperation",
    "affiliationChanged",
    "unspecified",
)


def serial(cert: Path) -> str:
    """A certificate's serial number, upper-case hex as ``openssl`` prints it."""
    return _run("x509", "-in", str(cert), "-noout", "-serial").strip().split("=", 1)[1].upper()


def revoked_serials(crl: Path) -> set[str]:
    """The serial numbers (upper-case hex) a CRL lists."""
    text = _run("crl", "-in", str(crl), "-noout", "-text")
    return {
        line.split(":", 1)[1].strip().upper()
        for line in text.splitlines()
        if line.strip().startswith("Serial Number:")
    }


def crl_next_update(crl: Path) -> dt.datetime:
    """When a CRL expires (its nextUpdate)."""
    stamp = _run("crl", "-in", str(crl), "-noout", "-nextupdate").strip().split("=", 1)[1]
    return dt.datetime.strptime(stamp, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=dt.UTC)


def verify(ca_cert: Path, cert: Path) -> None:
    """Raise CertificateError unless ``cert`` chains to ``ca_cert``."""
    _run("verify", "-CAfile", str(ca_cert), str(cert))
