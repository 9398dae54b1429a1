"""A network printer on a loopback port for the tests (raw TCP, port 9100 style): it collects each job's
bytes and answers the DLE EOT status queries it is given replies for (none: it never answers one)."""

from __future__ import annotations

import socket
import threading


class PrinterServer:
    def __init__(self, replies: dict[int, int] | None = None, port: int = 0):
        self.replies = replies or {}
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.jobs: list[bytes] = []
        self.received = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            buf = bytearray()
            with conn:
                while chunk := conn.recv(65536):
                    buf.extend(chunk)
                    query = buf.startswith(b"\x10\x04") and len(buf) % 3 == 0 and buf[-3:-1] == b"\x10\x04"
                    if query and buf[-1] in self.replies:
                        conn.sendall(bytes([self.replies[buf[-1]]]))
            if buf and not buf.startswith(b"\x10\x04"):
                self.jobs.append(bytes(buf))
                self.received.set()

    def close(self) -> None:
        self.sock.close()
