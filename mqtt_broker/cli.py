"""``waitroom broker ...``: generate the office broker's files (config, ACL, passwords, certificates, bridge).

Every command writes to stdout unless ``--out`` is given; with ``--out`` a file is only rewritten when its
content changes (and the command says ``written`` or ``unchanged``), so deployment tools stay idempotent.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from mqtt_broker import office as gen
from mqtt_broker.pki import REVOCATION_REASONS, CertificateError, OfficePki, crl_next_update
from waitroom import config
from waitroom.errors import ConfigError, WaitroomError

log = logging.getLogger(__name__)


def _config(path: str) -> config.Config:
    return config.load(path)


def _emit(args: argparse.Namespace, text: str, mode: int = 0o644, group: str | None = None) -> None:
    if not args.out or args.out == "-":
        sys.stdout.write(text)
        return
    changed = gen.write_file(Path(args.out), text, mode=mode, group=group)
    print(f"{args.out}: {'written' if changed else 'unchanged'}")


def _days(value: str) -> int:
    """--days: a certificate is renewed within ``renew_days`` (30) of its end, so a shorter validity was
    issued already due (0: expired at birth, refused by every node) and reissued on every run."""
    renew = OfficePki.renew_days
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of days") from None
    if days <= renew:
        raise argparse.ArgumentTypeError(
            f"{days} days: a certificate is renewed within {renew} days of its end, give more than {renew}"
        )
    return days


def _read_secrets(source: str) -> dict[str, Any]:
    """A node id -> password mapping from a YAML/JSON file, or from stdin with ``-``."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise gen.BrokerSetupError(f"{source}: cannot read the passwords: {exc.strerror}") from None
    if text.startswith("$ANSIBLE_VAULT"):
        raise gen.BrokerSetupError(
            f"{source} is encrypted with ansible-vault: run `ansible-vault decrypt {source}` first "
            "(and encrypt it again afterwards)"
        )
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise gen.BrokerSetupError(f"{source}: not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise gen.BrokerSetupError(f"{source}: expected a mapping of node id -> password")
    # Ansible passes the vault variable as {"mqtt_passwords": {...}} or the mapping itself.
    if set(data) == {"mqtt_passwords"}:
        data = data["mqtt_passwords"]
    return {str(k): v for k, v in data.items()}


def cmd_config(args: argparse.Namespace) -> int:
    cfg = _config(args.config)
    opts = gen.BrokerOptions(
        files_dir=args.dir,
        data_dir=args.data_dir,
        port=args.port,
        bind=args.bind or "",
        tls=not args.no_tls,
        require_certificate=args.require_certificate,
        crl=args.crl,
        local_port=args.local_port,
        include_dir=args.include_dir or "",
        max_connections=args.max_connections,
    )
    _emit(args, gen.mosquitto_conf(cfg, opts))
    return 0


def cmd_acl(args: argparse.Namespace) -> int:
    _emit(args, gen.acl_text(_config(args.config)))
    return 0


def cmd_passwords(args: argparse.Namespace) -> int:
    cfg = _config(args.config)
    out = Path(args.out)
    existing = _read_secrets(str(out)) if out.exists() else {}
    text = (
        "# MQTT passwords of office " + cfg.office.id + " (node id -> password), for the vault.\n"
        "# Keep it off shared drives. Encrypted between uses (ansible-vault encrypt " + out.name + "), it\n"
        "# must be decrypted before `waitroom broker passwords` runs again.\n"
        + yaml.safe_dump(gen.generate_passwords(cfg, existing), sort_keys=False)
    )
    changed = gen.write_file(out, text, mode=0o600)
    print(f"{out}: {'written' if changed else 'unchanged'}")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    cfg = _config(args.config)
    secrets = _read_secrets(args.passwords)
    existing_path = Path(args.existing or args.out or "")
    existing = existing_path.read_text(encoding="utf-8") if existing_path.is_file() else ""
    _emit(args, gen.password_file(cfg, secrets, existing), mode=0o640, group=args.group)
    return 0


def cmd_certs(args: argparse.Namespace) -> int:
    cfg = _config(args.config)
    pki = OfficePki(Path(args.out), cfg.office.id, days=args.days)
    made = {"ca": pki.ensure_ca(), "broker": pki.broker(args.broker_host)}
    if args.nodes:
        for acc in gen.accounts(cfg):
            made[f"nodes/{acc.user}"] = pki.node(acc.user)
    for name, fresh in made.items():
        print(f"{args.out}/{name}: {'written' if fresh else 'unchanged'}")
    return 0


def cmd_node_certs(args: argparse.Namespace) -> int:
    cfg = _config(args.config)
    pki = OfficePki(Path(args.out), cfg.office.id, days=args.days)
    done = pki.node_certificates([acc.user for acc in gen.accounts(cfg)])
    for account, what in done.items():
        print(f"{args.out}/nodes/{account}: {what}")
    crl = pki.ensure_crl()
    if crl is not None:
        until = crl_next_update(pki.crl).strftime("%Y-%m-%d")
        print(f"{args.out}/{pki.crl.name}: {'written' if crl else 'unchanged'} (valid until {until})")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    cfg = _config(args.config)
    pki = OfficePki(Path(args.out), cfg.office.id)
    # a node of the office with several accounts (a web node's workers: web, web.2, ...) loses them all
    mine = [acc.user for acc in gen.accounts(cfg) if acc.node_id == args.node]
    accounts = [a for a in mine if (pki.folder / f"nodes/{a}.crt").exists()] or [args.node]
    for account in accounts:
        number = pki.revoke(account, args.reason)
        print(f"{args.out}/nodes/{account}.crt: revoked ({args.reason}, serial {number}), key deleted")
    until = crl_next_update(pki.crl).strftime("%Y-%m-%d")
    print(f"{args.out}/{pki.crl.name}: written (valid until {until})")
    print(
        "Deploy now: the broker role installs the list and restarts mosquitto; "
        + ("the node gets a new certificate." if mine else f"{args.node} is not in the office file.")
    )
    return 0


def cmd_bridge(args: argparse.Namespace) -> int:
    cfg = _config(args.config)
    if args.password_file:
        try:
            password = Path(args.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise gen.BrokerSetupError(f"{args.password_file}: cannot read: {exc.strerror}") from None
    else:
        password = sys.stdin.readline().strip()
    b = gen.BridgeOptions(
        host=args.city_host,
        port=args.city_port,
        cafile=None if args.no_tls else args.city_ca,
        password=password,
        username=args.username,
        # remote tickets: an office whose file lists a node of role city lets the city service's commands in
        remote_tickets=any(n.role == "city" for n in cfg.nodes),
    )
    _emit(args, gen.bridge_conf(cfg, b), mode=0o640, group=args.group)
    return 0


def cmd_city_acl(args: argparse.Namespace) -> int:
    offices = list(args.office or [])
    for path in args.config or []:
        offices.append(_config(path).office.id)
    if not offices:
        raise gen.BrokerSetupError("name at least one office (--office ID or --config FILE)")
    _emit(args, gen.city_acl_text(sorted(set(offices))))
    return 0


def _run(func: Any) -> Any:
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 1
        except (WaitroomError, CertificateError, ValueError) as exc:
            print(f"waitroom broker: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:  # --out a file where a folder goes, a folder that cannot be made, ...
            name = exc.filename or args.out
            if isinstance(exc, (FileExistsError, NotADirectoryError)):
                print(f"waitroom broker: {name} is a file, not a folder (check --out)", file=sys.stderr)
            else:
                print(f"waitroom broker: cannot use {name}: {exc.strerror or exc}", file=sys.stderr)
            return 1

    return wrapped


def register(subparsers: Any) -> None:
    """Add ``waitroom broker`` with its subcommands."""
    p = subparsers.add_parser(
        "broker", help="generate the office broker's config, ACL, passwords, certificates"
    )
    sub = p.add_subparsers(dest="broker_command", required=True, metavar="WHAT")

    def cmd(
        name: str,
        func: Any,
        help_text: str,
        *,
        needs_config: bool = True,
        out: str = "output file (default stdout); rewritten only when the content changes",
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if needs_config:
            sp.add_argument("--config", "-c", required=True, help="office configuration file")
        sp.add_argument("--out", "-o", help=out)
        sp.set_defaults(func=_run(func))
        return sp

    sp = cmd("config", cmd_config, "mosquitto.conf for the office (TLS listener, auth, persistence, limits)")
    sp.add_argument(
        "--dir",
        default="/etc/mosquitto/waitroom",
        help="folder of passwd, acl, ca.crt, broker.crt, broker.key on the broker host",
    )
    sp.add_argument("--data-dir", default="/var/lib/mosquitto/", help="persistence folder")
    sp.add_argument("--port", type=int, default=8883, help="listener port for the nodes (default 8883)")
    sp.add_argument("--bind", help="listen address (default: every interface)")
    sp.add_argument("--no-tls", action="store_true", help="plain TCP listener (tests only)")
    sp.add_argument(
        "--require-certificate", action="store_true", help="nodes must present a client certificate"
    )
    sp.add_argument(
        "--crl",
        action="store_true",
        help="refuse the certificates revoked in crl.pem of --dir (`waitroom broker revoke`); needs "
        "--require-certificate",
    )
    sp.add_argument(
        "--local-port",
        type=int,
        default=0,
        help="also listen on 127.0.0.1:PORT without TLS, for a controller on the broker host",
    )
    sp.add_argument("--include-dir", help="include *.conf of this folder (e.g. the bridge)")
    sp.add_argument("--max-connections", type=int, default=200, help="connection limit of the node listener")

    cmd("acl", cmd_acl, "ACL file generated from the MQTT contract (waitroom.contract.acl_rules)")

    sp = cmd(
        "passwords",
        cmd_passwords,
        "create or complete a YAML file with a random password per node",
        out="YAML file to create or complete (mode 0600); encrypt it with ansible-vault",
    )
    sp._option_string_actions["--out"].required = True

    sp = cmd("passwd", cmd_passwd, "mosquitto password file (PBKDF2-SHA512) for every node of the office")
    sp.add_argument(
        "--passwords", "-p", required=True, help="YAML/JSON mapping node id -> password ('-' reads stdin)"
    )
    sp.add_argument(
        "--existing", help="current password file: hashes that still match are kept (default: --out)"
    )
    sp.add_argument("--group", default="mosquitto", help="group that may read the file (default mosquitto)")

    sp = cmd(
        "certs",
        cmd_certs,
        "office CA, broker certificate and (with --nodes) node client certificates",
        out="certificate folder",
    )
    sp._option_string_actions["--out"].required = True
    sp.add_argument(
        "--broker-host",
        action="append",
        required=True,
        help="host name or IP address the nodes use for the broker (repeat for more)",
    )
    sp.add_argument("--nodes", action="store_true", help="also issue a client certificate per node")
    sp.add_argument("--days", type=_days, default=825, help="validity of broker and node certificates")

    sp = cmd(
        "node-certs",
        cmd_node_certs,
        "a client certificate per MQTT account of the office (CN = node id), signed by the office CA; keeps "
        "valid ones (also the operator's own), never makes a CA",
        out="certificate folder with ca.crt (and ca.key to issue); the certificates go to nodes/",
    )
    sp._option_string_actions["--out"].required = True
    sp.add_argument("--days", type=_days, default=825, help="validity of new node certificates")

    sp = cmd(
        "revoke",
        cmd_revoke,
        "revoke a lost or stolen node's certificate: the office CA's revocation list crl.pem lists it, the "
        "broker refuses it at the TLS handshake once deployed; node-certs then issues the node a new one",
        out="certificate folder with ca.crt and ca.key (crl.pem, revoked/ and nodes/ in it)",
    )
    sp._option_string_actions["--out"].required = True
    sp.add_argument("node", metavar="NODE", help="node id (all its accounts) or MQTT account to revoke")
    sp.add_argument(
        "--reason",
        choices=REVOCATION_REASONS,
        default="keyCompromise",
        help="reason recorded in the revocation list (default keyCompromise: a lost or stolen node)",
    )

    sp = cmd("bridge", cmd_bridge, "bridge section to the city broker (only the public waiting times)")
    sp.add_argument("--city-host", required=True, help="city broker host")
    sp.add_argument("--city-port", type=int, default=8883, help="city broker port (default 8883)")
    sp.add_argument(
        "--city-ca",
        default="/etc/mosquitto/waitroom/city-ca.crt",
        help="CA certificate of the city broker, as a path on the office broker host",
    )
    sp.add_argument("--no-tls", action="store_true", help="plain TCP to the city broker (tests only)")
    sp.add_argument("--username", help="user at the city broker (default office-<office id>)")
    sp.add_argument("--password-file", help="file with the city broker password (default: read from stdin)")
    sp.add_argument("--group", default="mosquitto", help="group that may read the file (default mosquitto)")

    sp = cmd(
        "city-acl",
        cmd_city_acl,
        "ACL for the city broker: each office writes only its public topic",
        needs_config=False,
    )
    sp.add_argument("--office", action="append", help="office id (repeat)")
    sp.add_argument("--config", action="append", help="office configuration file (repeat)")
