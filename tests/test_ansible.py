"""The Ansible deployment: ansible-lint (offline) and --syntax-check, and a real run of site.yml against a
throwaway Debian bookworm root made with debootstrap, through community.general's chroot connection.

The chroot run installs the real waitroom wheel into the venv from a local wheelhouse (built once from PyPI
and cached in /var/cache/waitroom-test/ with the debootstrap root, because CI time is limited), then checks
files, users, units and the firmware settings, and that a second run changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mqtt_broker import office as gen
from mqtt_broker.pki import common_name, revoked_serials
from tests.conftest import IN_CI, ROOT, require_tool
from waitroom import config

ANSIBLE = ROOT / "ansible"
BIN = Path(sys.executable).parent
CACHE = Path(os.environ.get("WAITROOM_TEST_CACHE", "/var/cache/waitroom-test"))
MIRROR = os.environ.get("WAITROOM_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# Everything the roles install with apt is already in the cached root, so apt has nothing to download.
ROOT_PACKAGES = [
    "python3",
    "python3-venv",
    "python3-apt",
    "python3-packaging",
    "systemd",
    "systemd-sysv",
    "systemd-timesyncd",
    "unattended-upgrades",
    "nftables",
    "ca-certificates",
    "mosquitto",
    "espeak-ng",
    "libespeak-ng1",
    "fonts-dejavu-core",
    "alsa-utils",
    "libusb-1.0-0",
    "udev",
]


def ansible_env() -> dict[str, str]:
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ANSIBLE / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=f"{BIN}:{os.environ['PATH']}",
        ANSIBLE_LOCAL_TEMP="/tmp/ansible-local",
        ANSIBLE_HOME=str(CACHE / "ansible-home") if CACHE.exists() else "/tmp/ansible-home",
    )
    return env


@pytest.mark.slow
def test_ansible_lint_offline_is_clean() -> None:
    proc = subprocess.run(
        [str(BIN / "ansible-lint"), "--offline", "--nocolor"],
        cwd=ANSIBLE,
        capture_output=True,
        text=True,
        env=ansible_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_playbook_syntax_check() -> None:
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "site.yml"],
        cwd=ANSIBLE,
        capture_output=True,
        text=True,
        env=ansible_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_example_inventory_office_config_is_valid() -> None:
    cfg = config.load(ANSIBLE / "inventory" / "example" / "office.yaml")
    inv = yaml.safe_load((ANSIBLE / "inventory" / "example" / "hosts.yml").read_text())
    node_ids = {
        value
        for g in inv["all"]["children"].values()
        for h in (g or {}).get("hosts", {}).values()
        for key, value in (h or {}).items()
        if re.fullmatch(r"waitroom_(\w+_)?node_id", key)
    }
    assert "web" in node_ids and node_ids <= {n.id for n in cfg.nodes}
    vault = yaml.safe_load((ANSIBLE / "inventory/example/group_vars/all/vault.yml.example").read_text())
    assert set(vault["vault_waitroom_mqtt_passwords"]) == {a.user for a in gen.accounts(cfg)}


# -------------------------------------------------------------------------------------- the chroot run
def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def base_root_tarball() -> Path:
    """A bookworm root with the roles' packages, built once by debootstrap and cached as a tarball."""
    debootstrap = require_tool("debootstrap", "debootstrap", "/usr/sbin/debootstrap")
    key = hashlib.sha256(" ".join(ROOT_PACKAGES).encode()).hexdigest()[:12]
    tarball = CACHE / f"bookworm-{key}.tar"
    if tarball.exists():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix="bookworm-", dir=CACHE))
    try:
        run(
            [
                debootstrap,
                "--variant=minbase",
                "--include=" + ",".join(ROOT_PACKAGES),
                "bookworm",
                str(build),
                MIRROR,
            ],
            timeout=1200,
        )
        run(["tar", "-C", str(build), "-cf", str(tarball) + ".part", "."], timeout=600)
        os.replace(str(tarball) + ".part", tarball)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return tarball


def wheelhouse(wheel: Path) -> Path:
    """Wheels of waitroom's dependencies for the root's Python 3.11 (downloaded once from PyPI, cached)."""
    meta = (ROOT / "pyproject.toml").read_bytes()
    folder = CACHE / f"wheels-{hashlib.sha256(meta).hexdigest()[:12]}"
    if not (folder / ".complete").exists():
        folder.mkdir(parents=True, exist_ok=True)
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--platform",
                "manylinux2014_x86_64",
                "--platform",
                "manylinux_2_28_x86_64",
                "--platform",
                "linux_x86_64",
                "-d",
                str(folder),
                f"{wheel}",
            ],
            timeout=900,
        )
        (folder / ".complete").touch()
    for old in folder.glob("waitroom-*.whl"):
        old.unlink()
    return folder


@pytest.fixture(scope="module")
def chroot_root() -> Iterator[Path]:
    if os.geteuid() != 0:
        message = "the chroot run needs root (debootstrap, chroot, bind mounts)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    tarball = base_root_tarball()
    root = Path(tempfile.mkdtemp(prefix="waitroom-chroot-", dir="/var/tmp"))
    mounts: list[Path] = []
    try:
        run(["tar", "-C", str(root), "-xf", str(tarball)], timeout=300)
        for src, fstype in (("/proc", "proc"), ("/dev", None), ("/dev/pts", None)):
            target = root / src.lstrip("/")
            target.mkdir(parents=True, exist_ok=True)
            args = (
                ["mount", "-t", fstype, fstype, str(target)]
                if fstype
                else ["mount", "--bind", src, str(target)]
            )
            run(args)
            mounts.append(target)
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        # A Raspberry Pi OS boot partition, as the firmware tasks expect it.
        boot = root / "boot/firmware"
        boot.mkdir(parents=True, exist_ok=True)
        (boot / "config.txt").write_text("# Raspberry Pi OS default\n[pi4]\narm_boost=1\n[all]\n")
        (boot / "cmdline.txt").write_text(
            "console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootwait\n"
        )
        yield root
    finally:
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", str(m)], check=False)
        shutil.rmtree(root, ignore_errors=True)


NODE_CERT, NODE_KEY = "/etc/waitroom/tls/{node}.crt", "/etc/waitroom/tls/{node}.key"


def write_inventory(root: Path, work: Path) -> dict[str, object]:
    """Inventory with one chroot host in every group, certificates and secrets made by `waitroom broker`."""
    cfg_data = yaml.safe_load((ANSIBLE / "inventory/example/office.yaml").read_text())
    # client certificates, required by the broker (docs/deployment.md): the roles make and install them
    cfg_data["broker"]["tls"].update(cert=NODE_CERT, key=NODE_KEY)
    (work / "office.yaml").write_text(yaml.safe_dump(cfg_data, allow_unicode=True, sort_keys=False))
    cfg = config.load(work / "office.yaml")
    run(
        [
            str(BIN / "waitroom"),
            "broker",
            "certs",
            "--config",
            str(work / "office.yaml"),
            "--out",
            str(work / "pki"),
            "--broker-host",
            "wr-mitte-server",
        ]
    )
    passwords = gen.generate_passwords(cfg)
    dist = work / "dist"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(ROOT),
        ],
        timeout=300,
    )
    wheel = next(dist.glob("waitroom-*.whl"))
    host_vars = {
        "ansible_connection": "community.general.chroot",
        "ansible_host": str(root),
        "ansible_python_interpreter": "/usr/bin/python3",
        "waitroom_live_system": False,
        "waitroom_wheel": str(wheel),
        "waitroom_wheelhouse": str(wheelhouse(wheel)),
        "waitroom_office_config": str(work / "office.yaml"),
        "waitroom_tls_dir": str(work / "pki"),
        "waitroom_mqtt_passwords": passwords,
        "waitroom_web_secret_key": "k" * 48,
        "waitroom_node_id": "display-1",
        "waitroom_dispenser_node_id": "disp-1",
        "waitroom_counter_node_id": "counter-1",
        "waitroom_assist_node_id": "sb-1",
        "waitroom_admin_networks": ["10.20.0.0/24"],
        "waitroom_broker_require_certificate": True,
        "waitroom_hostname": "wr-test",
    }
    groups = [
        "brokers",
        "controllers",
        "webservers",
        "dispensers",
        "displays",
        "counters",
        "assist_terminals",
    ]
    inventory = {
        "all": {"hosts": {"pi": host_vars}, "children": {g: {"hosts": {"pi": None}} for g in groups}}
    }
    (work / "hosts.yml").write_text(yaml.safe_dump(inventory))
    return {"cfg": cfg, "passwords": passwords, "pki": work / "pki"}


def play(work: Path) -> tuple[str, dict[str, int]]:
    proc = subprocess.run(
        # --diff prints the old and new text of every file a task changes: keys must not be among them
        [str(BIN / "ansible-playbook"), "--diff", "-i", str(work / "hosts.yml"), "site.yml"],
        cwd=ANSIBLE,
        capture_output=True,
        text=True,
        env=ansible_env(),
        timeout=900,
    )
    log = proc.stdout + proc.stderr
    (work / f"play-{len(list(work.glob('play-*.log')))}.log").write_text(log)
    assert proc.returncode == 0, log[-6000:]
    assert "PRIVATE KEY" not in log, "a private key in Ansible's output"
    m = re.search(r"^pi\s*:\s*(.*)$", log, re.M)
    assert m, log[-3000:]
    recap = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}
    return log, recap


@pytest.mark.slow
@pytest.mark.ansible
# Two playbook runs (each may take up to 900 s, see play()) plus a debootstrap build on a cold cache: the
# suite's 300 s default is too short (two runs took 311 s on a 2-core machine shared with other jobs).
@pytest.mark.timeout(2400)
def test_site_yml_deploys_a_bookworm_root_idempotently(chroot_root: Path, artifacts: Path) -> None:
    root = chroot_root
    work = Path(tempfile.mkdtemp(prefix="waitroom-ansible-"))
    try:
        facts = write_inventory(root, work)
        _, first = play(work)
        assert first["failed"] == 0 and first["changed"] > 10
        log2, second = play(work)
        shutil.copy(work / "play-1.log", artifacts / "ansible-second-run.log")
        changed_tasks = re.findall(r"^changed: \[pi\].*$|^TASK \[.*\]", log2, re.M)
        assert second["changed"] == 0, "second run changed:\n" + "\n".join(changed_tasks)[-3000:]
        check_deployed_root(root, facts)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_deployed_root(root: Path, facts: dict[str, object]) -> None:
    cfg = facts["cfg"]
    passwords: dict[str, str] = facts["passwords"]  # type: ignore[assignment]
    etc = root / "etc"
    # the service user, system account without a login shell
    user = next(
        line.split(":") for line in (etc / "passwd").read_text().splitlines() if line.startswith("waitroom:")
    )
    assert user[6] == "/usr/sbin/nologin" and int(user[2]) < 1000
    groups = {
        line.split(":")[0]: line.split(":")[3].split(",") for line in (etc / "group").read_text().splitlines()
    }
    assert "waitroom" in groups["audio"] and "waitroom" in groups["video"]
    # waitroom installed in its venv and the office configuration valid there
    out = run(
        ["chroot", str(root), "/opt/waitroom/venv/bin/waitroom", "check-config", "/etc/waitroom/office.yaml"]
    )
    assert "OK - office mitte" in out.stdout
    # units: installed, enabled, with the right command lines
    wants = etc / "systemd/system/multi-user.target.wants"
    for unit, args in [
        ("waitroom-controller", "controller --config /etc/waitroom/office.yaml --data-dir"),
        ("waitroom-web", "web --config /etc/waitroom/office.yaml --node web --bind 0.0.0.0:8080"),
        ("waitroom-display", "node display --config /etc/waitroom/office.yaml --node display-1"),
        ("waitroom-counter", "node counter --config /etc/waitroom/office.yaml --node counter-1"),
        ("waitroom-assist", "node assist --config /etc/waitroom/office.yaml --node sb-1"),
        ("waitroom-dispenser", "node dispenser --config /etc/waitroom/office.yaml --node disp-1"),
    ]:
        text = (etc / f"systemd/system/{unit}.service").read_text()
        assert f"ExecStart=/opt/waitroom/venv/bin/waitroom {args}" in text, unit
        assert "Restart=always" in text and "User=waitroom" in text
        docs = re.search(r"^Documentation=(.*)$", text, re.M)
        assert docs, unit
        for url in docs.group(1).split():  # the handbook is there, beside the installation
            assert (root / url.removeprefix("file:///")).is_file(), (unit, url)
        if unit == "waitroom-web":
            assert "Type=simple" in text  # gunicorn does not pet a watchdog
        else:  # READY=1 and a liveness-checked watchdog (waitroom/systemd.py, tests/test_systemd.py)
            assert "Type=notify" in text and "WatchdogSec=60" in text
        assert (wants / f"{unit}.service").is_symlink(), f"{unit} not enabled"
        env = etc / f"waitroom/{unit}.env"
        assert oct(env.stat().st_mode & 0o777) == "0o640"
    assert (
        "WAITROOM_MQTT_PASSWORD=" + passwords["controller"]
        in (etc / "waitroom/waitroom-controller.env").read_text()
    )
    assert "WAITROOM_SECRET_KEY=" in (etc / "waitroom/waitroom-web.env").read_text()
    # the controller waits for a real clock synchronisation and does not loop on a damaged event log
    ctl = (etc / "systemd/system/waitroom-controller.service").read_text()
    assert re.search(r"^Wants=.*\btime-sync\.target\b", ctl, re.M), ctl
    assert re.search(r"^After=.*\btime-sync\.target\b", ctl, re.M)
    assert "RestartPreventExitStatus=65 66 73" in ctl
    assert "\nRequiresMountsFor=/var/lib/waitroom\n" in ctl  # systemd mounts the data's medium first
    web = (etc / "systemd/system/waitroom-web.service").read_text()
    assert "\nRequiresMountsFor=/var/lib/waitroom\n" in web  # its accounts and bookings live there too
    sysinit = etc / "systemd/system/sysinit.target.wants/systemd-time-wait-sync.service"
    assert sysinit.is_symlink(), "systemd-time-wait-sync enabled"
    assert (
        "TimeoutStartSec=10min"
        in (etc / "systemd/system/systemd-time-wait-sync.service.d/waitroom.conf").read_text()
    )
    # the nightly backup of the event log, as the service user
    backup = (etc / "systemd/system/waitroom-db-backup.service").read_text()
    assert "User=waitroom" in backup and "db backup" in backup and "--tag nightly --keep 14" in backup
    assert "Persistent=true" in (etc / "systemd/system/waitroom-db-backup.timer").read_text()
    assert (etc / "systemd/system/timers.target.wants/waitroom-db-backup.timer").is_symlink()
    assert (root / "var/lib/waitroom/backups").is_dir()
    assert "TTYPath=/dev/tty1" in (etc / "systemd/system/waitroom-display.service").read_text()
    assert os.readlink(etc / "systemd/system/getty@tty1.service") == "/dev/null"
    # the broker: generated configuration, ACL from the contract, passwords that verify
    conf = (etc / "mosquitto/mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "listener 8883" in conf
    assert (etc / "mosquitto/waitroom/acl").read_text() == gen.acl_text(cfg)
    stored = gen.parse_password_file((etc / "mosquitto/waitroom/passwd").read_text())
    assert set(stored) == set(passwords)
    assert all(gen.verify_password(stored[u], p) for u, p in passwords.items())
    assert (wants / "mosquitto.service").exists()
    # client certificates: the broker requires one and takes its CN as the login; each unit has its own
    assert "require_certificate true" in conf and "use_identity_as_username true" in conf
    pki: Path = facts["pki"]  # type: ignore[assignment]
    # ... and checks them against the office CA's revocation list, made (empty) by node-certs
    assert "crlfile /etc/mosquitto/waitroom/crl.pem" in conf
    crl = etc / "mosquitto/waitroom/crl.pem"
    assert crl.read_bytes() == (pki / "crl.pem").read_bytes() and revoked_serials(crl) == set()
    assert stat.S_IMODE(crl.stat().st_mode) == 0o644
    uid = int(user[2])
    for node in ("controller", "web", "disp-1", "display-1", "counter-1", "sb-1"):
        crt = root / NODE_CERT.replace("{node}", node).lstrip("/")
        key = root / NODE_KEY.replace("{node}", node).lstrip("/")
        assert common_name(crt) == node and crt.read_bytes() == (pki / f"nodes/{node}.crt").read_bytes()
        assert key.read_bytes() == (pki / f"nodes/{node}.key").read_bytes()
        assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.stat().st_uid == uid, node
        assert stat.S_IMODE((pki / f"nodes/{node}.key").stat().st_mode) == 0o600
    assert sorted(p.name for p in (etc / "waitroom/tls").iterdir()) == sorted(
        f"{n}.{ext}"
        for n in ("controller", "web", "disp-1", "display-1", "counter-1", "sb-1")
        for ext in ("crt", "key")
    ), "no other node's key on this host"
    assert "Restart=always" in (etc / "systemd/system/mosquitto.service.d/waitroom.conf").read_text()
    # base system
    assert (etc / "hostname").read_text() == "wr-test\n"
    assert "SystemMaxUse=200M" in (etc / "systemd/journald.conf.d/waitroom.conf").read_text()
    assert (
        'Unattended-Upgrade::Automatic-Reboot "true"'
        in (etc / "apt/apt.conf.d/52waitroom-unattended-upgrades").read_text()
    )
    nft = (etc / "nftables.conf").read_text()
    assert (
        "policy drop" in nft
        and "tcp dport 8883 accept" in nft
        and "ip saddr { 10.20.0.0/24 } tcp dport 22" in nft
    )
    assert "RuntimeWatchdogSec=15" in (etc / "systemd/system.conf.d/waitroom-watchdog.conf").read_text()
    # firmware: watchdog for every node, the display's HDMI settings, kernel parameters once each
    boot = (root / "boot/firmware/config.txt").read_text()
    assert "dtparam=watchdog=on" in boot and "disable_overscan=1" in boot and boot.startswith("# Raspberry")
    cmdline = (root / "boot/firmware/cmdline.txt").read_text()
    assert cmdline.count("\n") == 1 and cmdline.split().count("consoleblank=0") == 1
    assert "rootwait" in cmdline
    udev = (etc / "udev/rules.d/99-waitroom-printer.rules").read_text()
    assert 'GROUP="waitroom"' in udev
    json.dumps(sorted(stored))  # the facts are plain data (for the artifact)


# ------------------------------------------------------------------- the pre-upgrade backup of the event log
def _waitroom_task(name: str) -> dict[str, object]:
    tasks = yaml.safe_load((ANSIBLE / "roles/waitroom/tasks/main.yml").read_text())
    return next(t for t in tasks if t["name"] == name)


@pytest.mark.parametrize(
    ("controller", "expected"),
    [
        ({"database": "mitte.db"}, "/var/lib/waitroom/mitte.db"),
        ({"database": "/srv/log/events.db"}, "/srv/log/events.db"),
        (None, "/var/lib/waitroom/events.db"),
    ],
)
def test_pre_upgrade_backup_finds_the_event_log_named_in_the_office_file(
    tmp_path: Path, controller: dict[str, str] | None, expected: str
) -> None:
    """The example office keeps its log in mitte.db: the stat before the pre-upgrade backup looked for
    events.db (a role default of its own), found nothing and silently skipped the backup; and the backup
    command, run without --config, would have backed up events.db."""
    office = yaml.safe_load((ANSIBLE / "inventory/example/office.yaml").read_text())
    office.pop("controller", None)
    if controller is not None:
        office["controller"] = controller
    (tmp_path / "office.yaml").write_text(yaml.safe_dump(office, allow_unicode=True))
    stat = _waitroom_task("Look for the controller's event log")
    check = [
        {
            "name": "path",
            "ansible.builtin.debug": {"msg": stat["ansible.builtin.stat"]["path"]},
            "vars": stat.get("vars", {}),
        }
    ]
    (tmp_path / "play.yml").write_text(
        yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": check}])
    )
    proc = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            json.dumps(
                {
                    "waitroom_office_config": str(tmp_path / "office.yaml"),
                    "waitroom_data_dir": "/var/lib/waitroom",
                }
            ),
            str(tmp_path / "play.yml"),
        ],
        capture_output=True,
        text=True,
        env=ansible_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(rf"msg: {re.escape(expected)}$", proc.stdout, re.M), proc.stdout
    backup = _waitroom_task("Back up the event log before the upgrade")
    argv = backup["ansible.builtin.command"]["argv"]
    assert argv[argv.index("--config") + 1] == "{{ waitroom_config_dir }}/office.yaml"


# ------------------------------------------------------------------------------ secrets in Ansible's output
def _role_tasks() -> Iterator[tuple[str, dict[str, object]]]:
    def walk(tasks: list[dict[str, object]] | None, where: str) -> Iterator[tuple[str, dict[str, object]]]:
        for task in tasks or []:
            if "block" in task:
                yield from walk(task["block"], where)  # type: ignore[arg-type]
            else:
                yield where, task

    for path in sorted((ANSIBLE / "roles").glob("*/tasks/*.yml")):
        yield from walk(yaml.safe_load(path.read_text()), str(path.relative_to(ANSIBLE)))


def test_tasks_that_handle_keys_or_passwords_are_no_log() -> None:
    """`ansible-playbook --diff` prints the old and new text of every file a copy changes: a task that
    copies a private key or writes a password must be no_log (the broker key was printed)."""
    outcome = {
        "name",
        "notify",
        "when",
        "register",
        "loop_control",
        "changed_when",
        "failed_when",
        "check_mode",
    }
    secret = re.compile(r"\.key\b|password|secret", re.I)
    leaking = []
    for where, task in _role_tasks():
        action = {k: v for k, v in task.items() if k not in outcome}
        if "ansible.builtin.assert" in task or "ansible.builtin.include_role" in task:
            continue  # an assert prints its fail_msg; an include passes vars to tasks checked here
        if secret.search(yaml.safe_dump(action)) and not task.get("no_log") and task.get("diff") is not False:
            leaking.append(f"{where}: {task['name']}")
    assert not leaking, leaking


def test_the_web_role_refuses_the_example_vaults_secret_key(tmp_path: Path) -> None:
    """vault.yml.example's web secret, 'change-me-to-64-random-characters', is 33 characters long and
    passed the role's only check (at least 32): copied unchanged, it became the production secret."""
    vault = yaml.safe_load((ANSIBLE / "inventory/example/group_vars/all/vault.yml.example").read_text())
    tasks = yaml.safe_load((ANSIBLE / "roles/web/tasks/main.yml").read_text())
    check = next(t for t in tasks if t["name"] == "Check that the web app has a secret key")
    (tmp_path / "play.yml").write_text(
        yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [check]}])
    )

    def check_key(key: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *(str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local"),
                str(tmp_path / "play.yml"),
                *("-e", json.dumps({"waitroom_web_secret_key": key})),
            ],
            capture_output=True,
            text=True,
            env=ansible_env(),
            timeout=120,
        )

    refused = check_key(vault["vault_waitroom_web_secret_key"])
    assert refused.returncode != 0 and "not the placeholder" in refused.stdout, refused.stdout
    assert check_key("0123456789abcdef" * 4).returncode == 0


def test_every_role_variable_is_documented_and_every_example_group_variable_is_used() -> None:
    """ansible/README.md lists every variable of roles/*/defaults (a row may name several: `a`, `_b`
    for a_b), and the example inventory sets no variable that no role reads (it set waitroom_broker_host)."""
    readme = (ANSIBLE / "README.md").read_text()
    names = set(re.findall(r"`(waitroom_[a-z_]+)`", readme))
    tails = set(re.findall(r"`(_[a-z_]+)`", readme))
    defaults = {
        var: path
        for path in sorted((ANSIBLE / "roles").glob("*/defaults/main.yml"))
        for var in yaml.safe_load(path.read_text()) or {}
    }

    def documented(var: str) -> bool:
        return var in names or any(
            var.endswith(t) and any(f"{n}_".startswith(var[: -len(t)] + "_") for n in names) for t in tails
        )

    assert not [f"{p.relative_to(ANSIBLE)}: {v}" for v, p in defaults.items() if not documented(v)]
    roles = "\n".join(p.read_text() for p in (ANSIBLE / "roles").rglob("*") if p.is_file())
    roles += (ANSIBLE / "site.yml").read_text()
    example = yaml.safe_load((ANSIBLE / "inventory/example/group_vars/all/main.yml").read_text())
    assert not [v for v in example if v.startswith("waitroom_") and v not in roles]


def test_the_web_unit_runs_as_many_workers_as_the_office_file_gives_the_web_node(tmp_path: Path) -> None:
    """The role installs a certificate for each worker account of `workers: N` (web, web.2, ...), but the
    unit ran `waitroom web` without --workers: one worker, whatever the office file said."""
    from waitroom import cli

    office = yaml.safe_load((ANSIBLE / "inventory/example/office.yaml").read_text())
    next(n for n in office["nodes"] if n["id"] == "web")["workers"] = 3
    (tmp_path / "office.yaml").write_text(yaml.safe_dump(office, allow_unicode=True))
    tasks = yaml.safe_load((ANSIBLE / "roles/web/tasks/main.yml").read_text())
    unit_vars = next(t for t in tasks if t["name"] == "Run the web app")["vars"]
    play_vars = {
        **yaml.safe_load((ANSIBLE / "roles/web/defaults/main.yml").read_text()),
        **unit_vars,
        "waitroom_office_config": str(tmp_path / "office.yaml"),
        "waitroom_web_port": 8080,
        "waitroom_config_dir": "/etc/waitroom",
        "waitroom_data_dir": "/var/lib/waitroom",
    }
    show = {"ansible.builtin.copy": {"content": "{{ waitroom_unit_exec }}", "dest": str(tmp_path / "exec")}}
    (tmp_path / "play.yml").write_text(
        yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "vars": play_vars, "tasks": [show]}])
    )
    proc = subprocess.run(
        [*(str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local"), str(tmp_path / "play.yml")],
        capture_output=True,
        text=True,
        env=ansible_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    args = cli.build_parser().parse_args((tmp_path / "exec").read_text().split())
    assert (args.node, args.workers) == ("web", 3)


def test_the_controller_units_require_the_data_medium_mounted(tmp_path: Path) -> None:
    """The data directory on a USB disk or a second partition that failed to mount: the controller used to
    start on the empty mount point beneath and take it for a first start. Now its unit (and the nightly
    backup's) require the file systems of the data folder, the event log's folder (controller.database may be
    an absolute path on another medium) and the backup folder mounted first (RequiresMountsFor), and leave a
    controller stopped that refused for a medium that is not mounted (exit 66) or a missing log (65)."""
    office = yaml.safe_load((ANSIBLE / "inventory/example/office.yaml").read_text())
    office.setdefault("controller", {})["database"] = "/srv/ssd/waitroom/mitte.db"
    (tmp_path / "office.yaml").write_text(yaml.safe_dump(office, allow_unicode=True))
    tasks = yaml.safe_load((ANSIBLE / "roles/controller/tasks/main.yml").read_text())
    find = next(t for t in tasks if t["name"] == "Find the folder of the event log")
    unit_vars = next(t for t in tasks if t["name"] == "Run the office controller")["vars"]
    play_vars = {
        **yaml.safe_load((ANSIBLE / "roles/common/defaults/main.yml").read_text()),
        **yaml.safe_load((ANSIBLE / "roles/waitroom/defaults/main.yml").read_text()),
        **yaml.safe_load((ANSIBLE / "roles/controller/defaults/main.yml").read_text()),
        **unit_vars,
        "waitroom_office_config": str(tmp_path / "office.yaml"),
        "waitroom_backup_dir": "/media/backup-stick",
        "waitroom_unit_node": "controller",
    }
    templates = {
        "controller": ANSIBLE / "roles/waitroom/templates/waitroom.service.j2",
        "backup": ANSIBLE / "roles/controller/templates/waitroom-db-backup.service.j2",
    }
    render = [
        {"ansible.builtin.template": {"src": str(src), "dest": str(tmp_path / name)}}
        for name, src in templates.items()
    ]
    (tmp_path / "play.yml").write_text(
        yaml.safe_dump(
            [{"hosts": "localhost", "gather_facts": False, "vars": play_vars, "tasks": [find, *render]}]
        )
    )
    proc = subprocess.run(
        [*(str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local"), str(tmp_path / "play.yml")],
        capture_output=True,
        text=True,
        env=ansible_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    ctl = (tmp_path / "controller").read_text()
    unit, service = ctl.split("[Service]")
    assert "\nRequiresMountsFor=/var/lib/waitroom /srv/ssd/waitroom\n" in unit, ctl
    assert "\nRestartPreventExitStatus=65 66 73\n" in service
    backup = (tmp_path / "backup").read_text().split("[Service]")[0]
    assert "\nRequiresMountsFor=/var/lib/waitroom /srv/ssd/waitroom /media/backup-stick\n" in backup


@pytest.mark.parametrize(
    "path",
    [
        "mqtt-passwords.yaml",  # docs/deployment.md makes it in the checkout
        "ansible/inventory/mitte/pki/ca.key",  # the office CA's key: only on the admin machine
        "ansible/inventory/mitte/pki/nodes/disp-1.key",
    ],
)
def test_secrets_the_documented_commands_make_in_the_checkout_are_ignored_by_git(path: str) -> None:
    """docs/deployment.md writes the passwords and the PKI into the checkout (inventory/<office>/pki): a
    `git add -A` of the new office committed the CA key and every password in clear."""
    proc = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, capture_output=True, timeout=30)
    assert proc.returncode == 0, f"{path} is not ignored by git"


def test_the_broker_role_refuses_to_require_certificates_nobody_presents(tmp_path: Path) -> None:
    """waitroom_broker_require_certificate without broker.tls.cert in the office file would refuse every
    node: the broker role stops with a message instead of deploying that broker."""
    tasks = yaml.safe_load((ANSIBLE / "roles/broker/tasks/main.yml").read_text())
    check = next(
        t for t in tasks if t["name"] == "Check that nodes present the certificates the broker requires"
    )
    (tmp_path / "play.yml").write_text(
        yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [check]}])
    )
    office = yaml.safe_load((ANSIBLE / "inventory/example/office.yaml").read_text())

    def play(require: bool, tls: dict[str, str]) -> subprocess.CompletedProcess[str]:
        office["broker"]["tls"] = tls
        (tmp_path / "office.yaml").write_text(yaml.safe_dump(office, allow_unicode=True))
        defaults = yaml.safe_load((ANSIBLE / "roles/waitroom/defaults/main.yml").read_text())
        extra = {
            "waitroom_broker_require_certificate": require,
            "waitroom_office_config": str(tmp_path / "office.yaml"),
            "waitroom_node_tls": defaults["waitroom_node_tls"],
        }
        return subprocess.run(
            [
                *(str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local"),
                *(str(tmp_path / "play.yml"), "-e", json.dumps(extra)),
            ],
            capture_output=True,
            text=True,
            env=ansible_env(),
            timeout=120,
        )

    plain = {"ca": "/etc/waitroom/ca.crt"}
    refused = play(True, plain)
    assert refused.returncode != 0 and "the office file names no client certificate" in refused.stdout
    assert play(False, plain).returncode == 0, "the default: no certificates, as before"
    with_certs = {**plain, "cert": "/etc/waitroom/tls/{node}.crt", "key": "/etc/waitroom/tls/{node}.key"}
    assert play(True, with_certs).returncode == 0
