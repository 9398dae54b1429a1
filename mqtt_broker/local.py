"""Local brokers for one machine: a real mosquitto (tests, or the demo when installed) and the embedded amqtt
broker (the demo's zero-set-up default). Both listen on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
LOCAL_TEMPLATE = HERE / "local.conf.in"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


def render_local_config(port: int, path: Path, extra: str = "") -> Path:
    text = LOCAL_TEMPLATE.read_text().replace("@PORT@", str(port)) + extra
    path.write_text(text)
    path.chmod(0o644)  # mosquitto started as root drops to its own user and must still read it
    return path


class Mosquitto:
    """A real mosquitto process on a free loopback port, with a given or the project's local configuration."""

    def __init__(self, port: int | None = None, config: Path | None = None, workdir: Path | None = None):
        self.binary = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if self.binary is None:
            raise FileNotFoundError(
                "mosquitto is not installed: apt-get install mosquitto (or run: make sysdeps)"
            )
        self.port = port or free_port()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="waitroom-mosquitto-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        self.config = config or render_local_config(self.port, self.workdir / "mosquitto.conf")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "mosquitto.log"

    def start(self) -> Mosquitto:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.config)], stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {self.log_path.read_text()[-2000:]}") from None
        log.info("mosquitto listening on 127.0.0.1:%d", self.port)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _SnapshotDict(dict):  # type: ignore[type-arg]
    """A dict that is iterated over a copy of its keys or items.

    amqtt 0.12 loops over its subscriptions with awaits inside the loop (retained messages for a connecting
    client, the broadcast of a message); a client subscribing meanwhile changes the dict, the loop raises
    "dictionary changed size during iteration" and the connecting client is dropped -- on nearly every demo
    start, when the nodes connect together. Iterating over a snapshot is what the loops mean."""

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(dict.keys(self)))

    def keys(self):  # type: ignore[no-untyped-def]
        return list(dict.keys(self))

    def values(self):  # type: ignore[no-untyped-def]
        return list(dict.values(self))

    def items(self):  # type: ignore[no-untyped-def]
        return list(dict.items(self))


class EmbeddedBroker:
    """amqtt (pure Python, MQTT 3.1.1) on 127.0.0.1 in a background thread: the demo's zero-set-up broker."""

    def __init__(self, port: int = 1883, host: str = "127.0.0.1"):
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        self._thread = threading.Thread(target=self._run, name="embedded-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("embedded MQTT broker did not start")
        if self._error:
            raise RuntimeError(f"embedded MQTT broker failed: {self._error}") from self._error
        wait_for_port(self.port, host=self.host)
        log.info("embedded MQTT broker (amqtt) on %s:%d", self.host, self.port)
        return self

    def _run(self) -> None:
        from amqtt.broker import Broker  # imported here: only the demo needs it

        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        config = {
            "listeners": {
                "default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 200}
            },
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

        class OwnRetainedBroker(Broker):  # type: ignore[misc, valid-type]
            """amqtt 0.12 sends a connecting client the retained messages of every filter any client has
            subscribed to (its loop for a resumed session's subscriptions runs over the whole broker's), so a
            client of the demo got every node's status and every queue page before the `state` it asked for.
            Here a client gets the retained messages of its own subscriptions only, as MQTT says."""

            async def _publish_retained_messages_for_subscription(self, subscription, session):  # type: ignore[no-untyped-def]
                subscribers = self._subscriptions.get(subscription[0], ())
                if any(s.client_id == session.client_id for s, _ in subscribers):
                    await super()._publish_retained_messages_for_subscription(subscription, session)

        try:
            self._broker = OwnRetainedBroker(config, loop=self._loop)
            if isinstance(getattr(self._broker, "_subscriptions", None), dict):
                self._broker._subscriptions = _SnapshotDict(self._broker._subscriptions)
            self._loop.run_until_complete(self._broker.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._loop and self._broker:
            fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
            try:
                fut.result(timeout=5)
            except Exception:
                log.debug("embedded broker shutdown", exc_info=True)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(timeout=5)


def mosquitto_available() -> bool:
    return shutil.which("mosquitto") is not None or os.path.exists("/usr/sbin/mosquitto")
