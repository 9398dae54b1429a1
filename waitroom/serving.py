"""Serving a Flask app under gunicorn (gevent workers by default): the office web app and the city view."""

from __future__ import annotations

import os
from typing import Any


def serve(
    app_factory: Any,
    bind: str = "127.0.0.1:8080",
    threads: int = 64,
    *,
    workers: int = 1,
    worker_class: str = "gevent",
    connections: int = 6000,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Run ``app_factory()`` under gunicorn until SIGINT/SIGTERM (gevent workers by default)."""
    from gunicorn.app.base import BaseApplication

    os.environ["WAITROOM_WEB_WORKERS"] = str(workers)  # the app gives each worker its own MQTT client id

    class _App(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                "bind": bind,
                "workers": workers,
                "worker_class": worker_class,
                "worker_connections": connections,
                "threads": threads if worker_class == "gthread" else None,
                "backlog": 4096,
                "timeout": 60,
                "graceful_timeout": 5,
                "keepalive": 5,
                "loglevel": log_level,
                "accesslog": "-" if access_log else None,
                "proc_name": "waitroom-web",
                # gunicorn 27's control socket is one path per user ($HOME/.gunicorn/gunicorn.ctl), shared by
                # the web app, the city view and every test server of that user; nothing here uses it
                "control_socket_disable": True,
            }
            for key, value in options.items():
                if value is not None and key in self.cfg.settings:  # an older gunicorn lacks newer keys
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return app_factory()  # in the worker, after the fork: the MQTT thread lives there

    _App().run()
