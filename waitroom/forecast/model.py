"""The forecast model as the controller uses it: a tree ensemble in plain arrays, an interval from calibration
bins, and a fallback for an office without history. No scikit-learn at prediction time.

``Model.predict(features) -> (point_s, lo_s, hi_s)``: the expected seconds until the ticket is called and an
80 % interval. The point is the sum of the gradient-boosted trees (squared loss, so it estimates the mean --
what RASE judges); the interval scales the point by the 10 % and 90 % quantiles of actual/predicted observed
*out of sample* for forecasts of similar size (split conformal calibration per bin of the point forecast).

``Fallback`` is used before a model exists: the mean wait of the tickets called in the last hour, else the
queue-length predictor corrected for abandonment (Ibrahim and Whitt); its interval assumes exponential waits
around that mean (10 % and 90 % quantiles at 0.105 and 2.303 times the mean).

A model is saved as JSON (``FORMAT``, ``FORMAT_VERSION``, the feature names it was trained with); loading a
file of another version or for other features raises ``ModelFileError``.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from waitroom.forecast.errors import ModelFileError
from waitroom.forecast.features import BASE_FEATURES, FEATURES_VERSION

if TYPE_CHECKING:  # numpy is imported where arrays are made (training, evaluation), not to predict one ticket
    import numpy as np

log = logging.getLogger(__name__)

FORMAT = "waitroom-forecast"
FORMAT_VERSION = 1
LEVEL = 0.8  # the interval's nominal coverage
EXP_LO, EXP_HI = -math.log(0.9), -math.log(0.1)  # quantiles of an exponential with mean 1
_I = {name: i for i, name in enumerate(BASE_FEATURES)}


class Fallback:
    """Forecast without a trained model (a new office, or too little history)."""

    kind = "fallback"

    def predict(self, x: list[float] | np.ndarray) -> tuple[float, float, float]:
        point = float(x[_I["mean1h_all"]]) if x[_I["mean1h_all"]] > 0 else float(x[_I["ql_iw"]])
        point = max(point, 0.0)
        return point, EXP_LO * point, EXP_HI * point


@dataclass
class Trees:
    """A gradient-boosted ensemble flattened into arrays; node ``i`` of tree ``t`` is at ``roots[t] + i``."""

    baseline: float
    feature: np.ndarray  # int32, -1 at leaves
    threshold: np.ndarray  # float64; go left when x <= threshold
    left: np.ndarray  # int32, global index; a leaf points to itself
    right: np.ndarray
    value: np.ndarray  # float64, leaf values (shrinkage included)
    roots: np.ndarray  # int32
    depth: int

    @classmethod
    def from_sklearn(cls, est: Any) -> Trees:
        import numpy as np

        feats, thr, left, right, val, roots = [], [], [], [], [], []
        depth, off = 0, 0
        for (pred,) in est._predictors:
            nodes = pred.nodes
            if np.any(nodes["is_categorical"]):
                raise ValueError("categorical splits are not supported")
            n = len(nodes)
            idx = np.arange(off, off + n, dtype=np.int32)
            leaf = nodes["is_leaf"].astype(bool)
            roots.append(off)
            feats.append(np.where(leaf, -1, nodes["feature_idx"]).astype(np.int32))
            thr.append(np.where(leaf, 0.0, nodes["num_threshold"]))
            left.append(np.where(leaf, idx, nodes["left"] + off).astype(np.int32))
            right.append(np.where(leaf, idx, nodes["right"] + off).astype(np.int32))
            val.append(np.where(leaf, nodes["value"], 0.0))
            depth = max(depth, int(nodes["depth"].max()))
            off += n
        cat = np.concatenate
        base = float(np.ravel(est._baseline_prediction)[0])
        return cls(
            base, cat(feats), cat(thr), cat(left), cat(right), cat(val), np.array(roots, np.int32), depth
        )

    def __post_init__(self) -> None:
        # plain lists for the single prediction: a Python walk beats numpy's per-call overhead on ~200 trees
        self._py = (self.feature.tolist(), self.threshold.tolist(), self.left.tolist(), self.right.tolist())
        self._val = self.value.tolist()
        self._roots = self.roots.tolist()

    def predict(self, x: list[float] | np.ndarray) -> float:
        """One feature vector: the baseline plus the leaf of every tree."""
        xs = x.tolist() if hasattr(x, "tolist") else x  # a numpy row, or a list
        feat, thr, left, right = self._py
        val = self._val
        total = 0.0
        for i in self._roots:
            f = feat[i]
            while f >= 0:
                i = left[i] if xs[f] <= thr[i] else right[i]
                f = feat[i]
            total += val[i]
        return self.baseline + total

    def predict_many(self, xs: np.ndarray) -> np.ndarray:
        import numpy as np

        idx = np.broadcast_to(self.roots, (len(xs), len(self.roots))).copy()
        rows = np.arange(len(xs))[:, None]
        for _ in range(self.depth):
            fi = self.feature[idx]
            go = xs[rows, np.maximum(fi, 0)] <= self.threshold[idx]
            idx = np.where(go, self.left[idx], self.right[idx])
        return self.baseline + self.value[idx].sum(axis=1)

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "depth": self.depth,
            "feature": self.feature.tolist(),
            "threshold": self.threshold.tolist(),
            "left": self.left.tolist(),
            "right": self.right.tolist(),
            "value": self.value.tolist(),
            "roots": self.roots.tolist(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Trees:
        import numpy as np

        arr = np.asarray
        return cls(
            float(d["baseline"]),
            arr(d["feature"], np.int32),
            arr(d["threshold"], np.float64),
            arr(d["left"], np.int32),
            arr(d["right"], np.int32),
            arr(d["value"], np.float64),
            arr(d["roots"], np.int32),
            int(d["depth"]),
        )


@dataclass
class Interval:
    """Ratio actual/point at the 10 % and 90 % quantiles, per bin of the point forecast (upper ``edges``)."""

    edges: list[float]
    lo: list[float]
    hi: list[float]

    def apply(self, point: float) -> tuple[float, float]:
        b = bisect.bisect_right(self.edges, point)
        p = max(point, 1.0)
        return max(0.0, self.lo[b] * p), self.hi[b] * p

    @classmethod
    def calibrate(cls, preds: np.ndarray, actual: np.ndarray, min_per_bin: int = 100) -> Interval:
        """Bins of equal count (at most 10, at least ``min_per_bin`` pairs each) of out-of-sample pairs."""
        import numpy as np

        preds, actual = np.asarray(preds, float), np.asarray(actual, float)
        ratio = actual / np.maximum(preds, 1.0)
        k = int(max(1, min(10, len(preds) // min_per_bin)))
        edges = [float(e) for e in np.quantile(preds, np.linspace(0, 1, k + 1)[1:-1])] if k > 1 else []
        bins = np.searchsorted(edges, preds, side="right")
        qa, qb = (1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2
        lo, hi = [], []
        for b in range(k):
            r = ratio[bins == b]
            if len(r) == 0:  # ties at an edge: borrow the global ratios
                r = ratio
            lo.append(float(np.quantile(r, qa)))
            hi.append(float(np.quantile(r, qb)))
        return cls(edges, lo, hi)


@dataclass
class Model:
    """A trained forecast: point trees, the interval calibration and where both came from."""

    names: tuple[str, ...]
    services: tuple[str, ...]
    trees: Trees
    interval: Interval
    meta: dict[str, Any] = field(default_factory=dict)
    # out-of-sample (point, actual, day) pairs the interval was calibrated on; the next training extends them
    calibration: list[tuple[float, float, str]] = field(default_factory=list)
    kind = "model"

    def predict(self, x: list[float] | np.ndarray) -> tuple[float, float, float]:
        """(point, lo, hi) seconds for one feature vector of ``QueueState.features``."""
        point = max(0.0, self.trees.predict(x))
        lo, hi = self.interval.apply(point)
        return point, min(lo, point), max(hi, point)

    def predict_many(self, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        import numpy as np

        point = np.maximum(0.0, self.trees.predict_many(np.asarray(xs, dtype=np.float64)))
        lo, hi = np.empty_like(point), np.empty_like(point)
        for i, p in enumerate(point):
            lo[i], hi[i] = self.interval.apply(float(p))
        return point, np.minimum(lo, point), np.maximum(hi, point)

    # -- files
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "features_version": FEATURES_VERSION,
            "features": list(self.names),
            "services": list(self.services),
            "meta": self.meta,
            "point": self.trees.to_json(),
            "interval": {"edges": self.interval.edges, "lo": self.interval.lo, "hi": self.interval.hi},
            "calibration": [list(c) for c in self.calibration],
        }

    @classmethod
    def from_json(cls, d: Any, source: str = "model") -> Model:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ModelFileError(f"{source}: not a waitroom forecast model")
        if d.get("version") != FORMAT_VERSION or d.get("features_version") != FEATURES_VERSION:
            raise ModelFileError(
                f"{source}: model format {d.get('version')}/features {d.get('features_version')}, this "
                f"waitroom reads {FORMAT_VERSION}/{FEATURES_VERSION}; train a new model"
            )
        try:
            services = tuple(d["services"])
            names = tuple(d["features"])
            iv = d["interval"]
            model = cls(
                names,
                services,
                Trees.from_json(d["point"]),
                Interval(list(iv["edges"]), list(iv["lo"]), list(iv["hi"])),
                dict(d.get("meta", {})),
                [(float(p), float(a), str(day)) for p, a, day in d.get("calibration", [])],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{source}: damaged model file ({exc!r})") from None
        if names[: len(BASE_FEATURES)] != BASE_FEATURES:
            raise ModelFileError(f"{source}: trained with other features; train a new model")
        return model

    def save(self, path: str | Path) -> Path:
        """Write atomically (a reader never sees half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".model-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.to_json(), fh, separators=(",", ":"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> Model:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelFileError(f"{p}: no such model file") from None
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: a NUL in p
            raise ModelFileError(f"{p}: unreadable model file ({exc})") from None
        return cls.from_json(data, str(p))
