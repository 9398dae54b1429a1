"""A load generator that is not the bottleneck: many MQTT 3.1.1 connections in one selector loop.

paho with one thread per client tops out near 900 round trips/s in one Python process on a small machine;
this client speaks just enough MQTT (CONNECT, SUBSCRIBE, PUBLISH QoS 0/1, PUBACK) over non-blocking sockets to
drive thousands of round trips per second from a single thread. Benchmarks only: no TLS, no reconnects.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def packet(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + _varint(len(body)) + body


def connect_packet(client_id: str, keepalive: int = 60) -> bytes:
    return packet(0x10, _str("MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive) + _str(client_id))


def subscribe_packet(pid: int, topic: str, qos: int = 1) -> bytes:
    return packet(0x82, struct.pack("!H", pid) + _str(topic) + bytes([qos]))


def publish_packet(topic: str, payload: bytes, qos: int = 0, pid: int = 1) -> bytes:
    head = _str(topic) + (struct.pack("!H", pid) if qos else b"")
    return packet(0x30 | (qos << 1), head + payload)


@dataclass
class Conn:
    """One MQTT connection; ``on_publish(conn, topic, payload)`` is called for every message it receives."""

    sock: socket.socket
    client_id: str
    on_publish: Callable[[Conn, str, bytes], None]
    buf: bytearray = field(default_factory=bytearray)
    out: bytearray = field(default_factory=bytearray)
    pid: int = 0
    connected: bool = False
    subacks: int = 0
    user: dict = field(default_factory=dict)

    def next_pid(self) -> int:
        self.pid = self.pid % 65535 + 1
        return self.pid

    def send(self, data: bytes) -> None:
        if not self.out:
            try:
                n = self.sock.send(data)
            except BlockingIOError:
                n = 0
            data = data[n:]
        self.out += data

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.send(publish_packet(topic, payload, qos, self.next_pid() if qos else 0))

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.send(subscribe_packet(self.next_pid(), topic, qos))

    def feed(self) -> None:
        """Parse every complete packet in the buffer."""
        buf = self.buf
        while len(buf) >= 2:
            mult, length, i = 1, 0, 1
            while True:
                if i >= len(buf):
                    return
                b = buf[i]
                length += (b & 0x7F) * mult
                mult *= 128
                i += 1
                if not b & 0x80:
                    break
            if len(buf) < i + length:
                return
            kind, body = buf[0], bytes(buf[i : i + length])
            del buf[: i + length]
            t = kind >> 4
            if t == 2:
                self.connected = True
            elif t == 9:
                self.subacks += 1
            elif t == 3:
                qos = (kind >> 1) & 3
                tl = struct.unpack("!H", body[:2])[0]
                topic = body[2 : 2 + tl].decode()
                pos = 2 + tl
                if qos:
                    pid = body[pos : pos + 2]
                    pos += 2
                    self.send(b"\x40\x02" + pid)
                self.on_publish(self, topic, body[pos:])


class Loop:
    """Many connections in one selector."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.conns: list[Conn] = []

    def connect(self, port: int, client_id: str, on_publish: Callable[[Conn, str, bytes], None]) -> Conn:
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        c = Conn(s, client_id, on_publish)
        self.sel.register(s, selectors.EVENT_READ, c)
        self.conns.append(c)
        c.send(connect_packet(client_id))
        return c

    def run(self, until: Callable[[], bool], timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while not until():
            if time.monotonic() > end:
                raise TimeoutError("load loop timed out")
            for c in self.conns:
                if c.out:
                    try:
                        n = c.sock.send(c.out)
                    except BlockingIOError:
                        n = 0
                    del c.out[:n]
            for key, _ in self.sel.select(0.05):
                c = key.data
                try:
                    data = c.sock.recv(1 << 16)
                except BlockingIOError:
                    continue
                if not data:
                    raise ConnectionError(f"{c.client_id}: broker closed the connection")
                c.buf += data
                c.feed()

    def close(self) -> None:
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.sock.send(b"\xe0\x00")  # DISCONNECT
            self.sel.unregister(c.sock)
            c.sock.close()
        self.conns.clear()
