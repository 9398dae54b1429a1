"""The learned forecast's model files and its nightly training job, without numpy: the controller loads the
current model (if any) and starts the nightly thread at start-up, and only training needs the numerical
stack (``waitroom.forecast.train``, imported when a training runs)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from waitroom.forecast.errors import ModelFileError
from waitroom.forecast.events import Row
from waitroom.forecast.model import Model

log = logging.getLogger("waitroom.forecast.train")


# ------------------------------------------------------------------------------------------------ model files
class ModelStore:
    """Versioned model files in ``<data dir>/forecast/``: ``model-<UTC time>.json`` and ``current`` naming
    the one in use; the newest ``keep`` files are kept."""

    def __init__(self, directory: str | Path, keep: int = 10):
        self.dir = Path(directory)
        self.keep = keep

    def save(self, model: Model) -> Path:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        path = model.save(self.dir / f"model-{stamp}.json")
        tmp = self.dir / ".current.tmp"
        tmp.write_text(path.name + "\n", encoding="utf-8")
        tmp.replace(self.dir / "current")
        for old in sorted(self.dir.glob("model-*.json"))[: -self.keep]:
            old.unlink(missing_ok=True)
        log.info("forecast: model %s saved (%d rows)", path.name, model.meta.get("rows", 0))
        return path

    def current(self) -> Model | None:
        """The model in use, or None (no model yet, or a damaged file: logged, the fallback takes over)."""
        pointer = self.dir / "current"
        if not pointer.is_file():
            return None
        try:
            name = pointer.read_text(encoding="utf-8").strip()
            return Model.load(self.dir / name)
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # ModelFileError is a ValueError
            if not isinstance(exc, ModelFileError):  # the pointer itself is damaged (a NUL, not text)
                exc = ModelFileError(f"{pointer}: damaged pointer to the model file ({exc})")
            log.warning("forecast: %s; using the fallback until the next training", exc)
            return None


class Trainer:
    """Trains in a background thread: ``rows()`` gives the training rows (e.g. ``rows_from_store_events`` over
    the event log), the new model is saved in ``store`` and handed to ``on_model`` (e.g.
    ``LiveForecast.set_model``). ``run_nightly(hour)`` retrains once a day after ``hour`` (local time)."""

    def __init__(
        self,
        rows: Callable[[], Sequence[Row]],
        services: tuple[str, ...],
        store: ModelStore,
        on_model: Callable[[Model], None],
        params: dict[str, Any] | None = None,
    ):
        self.rows, self.services, self.store, self.on_model = rows, services, store, on_model
        self.params = params
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def train_now(self) -> Model | None:
        """Train in the calling thread (the nightly job, a CLI); returns the new model or None."""
        with self._lock:
            t0 = time.monotonic()
            from waitroom.forecast.train import train

            model = train(self.rows(), self.services, previous=self.store.current(), params=self.params)
            if model is None:
                return None
            self.store.save(model)
            log.info("forecast: trained in %.1f s", time.monotonic() - t0)
        self.on_model(model)
        return model

    def train_in_background(self) -> threading.Thread:
        th = threading.Thread(target=self._safe_train, name="forecast-train", daemon=True)
        th.start()
        return th

    def _safe_train(self) -> None:
        try:
            self.train_now()
        except Exception:  # a failed training keeps the old model; the office goes on
            log.exception("forecast: training failed; keeping the current model")

    def run_nightly(self, hour: int = 2, tz: dt.tzinfo | None = None, poll_s: float = 60.0) -> None:
        """Start a thread that trains once per day at ``hour`` o'clock; ``stop()`` ends it."""

        def loop() -> None:
            last = None
            while not self._stop.wait(poll_s):
                now = dt.datetime.now(tz)
                if now.hour >= hour and now.date() != last:
                    last = now.date()
                    self._safe_train()

        self._thread = threading.Thread(target=loop, name="forecast-nightly", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
