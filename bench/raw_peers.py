"""The raw limits the controller benchmark compares against, as processes of their own (paho, like the
controller):

- ``responder PORT OFFICE``: answers every command on ``node/+/cmd`` at once with an ok reply -- the
  do-nothing controller, the ceiling of the load generator and the broker together;
- ``relay PORT DB``: takes every message on ``bench/in``, inserts it into SQLite (WAL, synchronous=FULL, one
  commit per message) and republishes it on ``bench/out`` -- the raw two-hop of a counter press to a display.

    python bench/raw_peers.py responder 1883 mitte
"""

from __future__ import annotations

import json
import socket
import sqlite3
import sys
import threading

import paho.mqtt.client as mqtt


def _client(port: int, client_id: str) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    c.max_inflight_messages_set(1000)

    def nodelay(client: mqtt.Client, *_: object) -> None:
        sock = client.socket()
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    c.on_connect = nodelay
    c.connect("127.0.0.1", port)
    return c


def responder(port: int, office: str) -> None:
    base = f"waitroom/v1/{office}/node/"
    c = _client(port, f"raw-responder-{office}")

    def on_message(client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        node = msg.topic[len(base) :].split("/", 1)[0]
        rid = json.loads(msg.payload).get("id")
        client.publish(f"{base}{node}/reply", json.dumps({"id": rid, "ok": True, "result": {}}), qos=1)

    c.on_message = on_message
    c.subscribe(f"{base}+/cmd", qos=1)
    _serve(c)


def relay(port: int, db_path: str) -> None:
    db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, data TEXT)")
    c = _client(port, "raw-relay")

    def on_message(client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO events (data) VALUES (?)", (msg.payload.decode(),))
        db.execute("COMMIT")
        client.publish("bench/out", msg.payload, qos=1)

    c.on_message = on_message
    c.subscribe("bench/in", qos=1)
    _serve(c)


def _serve(c: mqtt.Client) -> None:
    c.loop_start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    kind, port, arg = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    {"responder": responder, "relay": relay}[kind](port, arg)
