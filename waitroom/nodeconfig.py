"""A node's validated-config cache: the node process starts without pydantic (issue 17).

The office configuration's schema is defined once, in ``waitroom.config`` (pydantic), and building it costs a
node about 12 MB of its memory for as long as it runs. So ``waitroom node ROLE`` (counter, assist, dispenser,
display) validates in a short-lived process instead and keeps only what that process wrote:

- the key is the SHA-256 of the YAML file's bytes, the node id and role, and a fingerprint of the schema (the
  waitroom version, the source of the modules that validate, the pin maps, the pydantic and python-escpos
  installations);
- on a hit, ``<data dir>/cache/node-<id>-<key>.json`` is read into light records (``Record``): the same
  attribute names as the pydantic objects (the fields are written from the models themselves) and the same
  methods (the models and the records share the mixins of ``waitroom.configbase`` and the like);
- on a miss (or a damaged file, which is ignored) ``python -m waitroom.nodeconfig CONFIG NODE ROLE``
  validates the file with the schema, runs the role's ``prepare`` (the node's own settings: dispenser options,
  printer settings, resolved pins) and writes the cache atomically; a configuration error is printed by it,
  naming the key, exactly as ``waitroom check-config`` and an in-process start print it, and the node exits
  with its exit code (1). When no cache can be written (a read-only data directory), the node validates in
  its own process as before.

The cache holds only this node's part: the office, services, counters, broker, the ``printer`` section and
this node's entry (``nodes`` has one element), and ``prepared``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from waitroom import __version__
from waitroom.contract import ID_RE
from waitroom.paths import data_dir

log = logging.getLogger(__name__)

FORMAT = 1
VALIDATE_TIMEOUT_S = 120  # the short-lived validating process (a second or two, ten on a Pi Zero's SD card)
# The role's preparation, run in the validating process: it returns the node's own settings, validated.
PREPARE = {
    "counter": "edge.counter:prepare",
    "assist": "edge.counter:prepare",
    "dispenser": "edge.dispenser.options:prepare",
    "display": "displays.node:prepare",
}
# The parts of the configuration a node keeps (with its own entry of ``nodes`` and ``prepared``).
FIELDS = ("office", "services", "counters", "broker", "printer")
# What decides whether a file is valid and what it becomes: a change to any of these is a miss.
SCHEMA_SOURCES = (
    "waitroom/config.py",
    "waitroom/configbase.py",
    "waitroom/nodeconfig.py",
    "waitroom/contract.py",
    "waitroom/i18n.py",
    "edge/counter.py",
    "edge/dispenser/options.py",
    "edge/dispenser/schema.py",
    "ticket_printer/settings.py",
    "ticket_printer/capabilities.py",
    "ticket_printer/facts.py",
    "firmware_config/pins.py",
    "displays/settings.py",
    "displays/look.py",
    "displays/node.py",
)
SCHEMA_GLOBS = ("firmware_config/pinmaps/*.yaml",)
DEPENDENCIES = (("pydantic", "version.py"), ("pydantic_core", "__init__.py"), ("escpos", "capabilities.json"))
# Packages whose plain (non-pydantic) base classes are a record's methods.
PACKAGES = frozenset({"waitroom", "edge", "displays", "ticket_printer", "firmware_config"})
ROOT = Path(__file__).resolve().parent.parent


def fingerprint() -> str:
    """The schema's fingerprint: waitroom's version, the validating modules' source, the pin maps, the
    installed pydantic and python-escpos (their files' size and time)."""
    h = hashlib.sha256(f"{FORMAT}\0{__version__}\0{sys.version}\0".encode())
    files = [ROOT / f for f in SCHEMA_SOURCES] + sorted(p for g in SCHEMA_GLOBS for p in ROOT.glob(g))
    for path in files:
        h.update(str(path.relative_to(ROOT)).encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"(missing)")
    for package, name in DEPENDENCIES:
        spec = find_spec(package)
        origin = Path(spec.origin) if spec and spec.origin else None
        try:
            st = (origin.parent / name).stat() if origin else None
        except OSError:
            st = None
        h.update(f"{package}:{st and st.st_size}:{st and st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def cache_key(raw: bytes, node_id: str, role: str) -> str:
    h = hashlib.sha256(raw)
    h.update(f"\0{node_id}\0{role}\0{fingerprint()}".encode())
    return h.hexdigest()


def cache_path(node_id: str, key: str) -> Path:
    return data_dir() / "cache" / f"node-{node_id}-{key[:32]}.json"


# ---------------------------------------------------------------------------------------------- records
class Record:
    """A validated object of the schema as plain, frozen attributes (named as the model's fields)."""

    _fields: tuple[str, ...] = ()

    def __init__(self, **fields: Any):
        self.__dict__.update(fields)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={self.__dict__.get(f)!r}" for f in self._fields)
        return f"{type(self).__name__}({inner})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and all(
            self.__dict__.get(f) == other.__dict__.get(f) for f in self._fields
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, *(repr(self.__dict__.get(f)) for f in self._fields)))

    def model_copy(self, *, update: dict[str, Any] | None = None) -> Record:
        """A copy with some fields changed (pydantic's ``model_copy(update=...)``; not validated)."""
        new = object.__new__(type(self))
        new.__dict__.update({f: self.__dict__[f] for f in self._fields}, **(update or {}))
        return new


_CLASSES: dict[tuple[str, tuple[str, ...], tuple[str, ...]], type[Record]] = {}


def record_class(name: str, mixins: list[str], fields: list[str]) -> type[Record]:
    """The record class ``name`` with the methods of ``mixins`` ("module:Class" of waitroom's packages)."""
    key = (name, tuple(mixins), tuple(fields))
    cls = _CLASSES.get(key)
    if cls is None:
        bases = []
        for ref in mixins:
            module, _, qualname = ref.partition(":")
            if module.split(".")[0] not in PACKAGES:
                raise ValueError(f"record {name}: methods from {module} are not waitroom's")
            bases.append(getattr(importlib.import_module(module), qualname))
        cls = type(name, (*bases, Record), {"_fields": tuple(fields), "__module__": __name__})
        _CLASSES[key] = cls
    return cls


def decode(doc: dict[str, Any]) -> Any:
    """The light Config of a cache document (``encode``'s output)."""
    classes = {
        name: record_class(name, spec["mixins"], spec["fields"]) for name, spec in doc["classes"].items()
    }

    def value(v: Any) -> Any:
        if isinstance(v, dict):
            if "r" in v:
                cls = classes[v["r"]]
                return cls(**{f: value(x) for f, x in v["f"].items()})
            if "d" in v:
                return {value(k): value(x) for k, x in v["d"]}
            if "l" in v:
                return [value(x) for x in v["l"]]
            if "t" in v:
                return tuple(value(x) for x in v["t"])
            raise ValueError(f"unknown entry {sorted(v)}")
        return v

    return value(doc["config"])


def encode(cfg: Any, node: Any, prepared: dict[str, Any], key: str) -> dict[str, Any]:
    """A cache document: the node's part of a validated ``Config`` (pydantic) and its prepared settings.
    Dicts, lists and tuples are tagged, so the records come back with the types the models hold."""
    from pydantic import BaseModel

    classes: dict[str, dict[str, list[str]]] = {}

    def record(name: str, cls: type, fields: dict[str, Any]) -> dict[str, Any]:
        mixins = [
            f"{b.__module__}:{b.__qualname__}"
            for b in cls.__mro__[1:]
            if b.__module__.split(".")[0] in PACKAGES and not issubclass(b, BaseModel)
        ]
        spec = {"mixins": mixins, "fields": list(fields)}
        if classes.setdefault(name, spec) != spec:
            raise TypeError(f"two classes named {name}")
        return {"r": name, "f": {f: value(v) for f, v in fields.items()}}

    def value(v: Any) -> Any:
        if isinstance(v, BaseModel):
            cls = type(v)
            return record(cls.__name__, cls, {f: getattr(v, f) for f in cls.model_fields})
        if isinstance(v, dict):
            return {"d": [[value(k), value(x)] for k, x in v.items()]}
        if isinstance(v, list):
            return {"l": [value(x) for x in v]}
        if isinstance(v, tuple):
            return {"t": [value(x) for x in v]}
        if v is None or isinstance(v, bool | int | float | str):
            return v
        raise TypeError(f"cannot cache a {type(v).__name__}")

    fields = {f: getattr(cfg, f) for f in FIELDS} | {"nodes": [node], "prepared": prepared}
    root = record("Config", type(cfg), fields)
    return {"format": FORMAT, "key": key, "classes": classes, "config": root}


# ---------------------------------------------------------------------------------------- the node side
def read(path: Path, key: str | None) -> Any | None:
    """The light Config from a cache file, or None when there is none; a damaged one is ignored.
    ``key``: the key the file must have been written for (None: the one the validating process just wrote)."""
    try:
        doc = json.loads(path.read_bytes())
        if doc.get("format") != FORMAT or doc.get("key") != (doc.get("key") if key is None else key):
            raise ValueError("written for another file or version")
        return decode(doc)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError) as exc:
        log.warning("ignored the configuration cache %s (%s); validating again", path, exc)
        return None


def load_for_node(config_file: str, node_id: str, role: str) -> Any | None:
    """The node's configuration from its cache; on a miss validated by a short-lived process that writes it.

    A configuration error ends this process with the validating process's exit code (it printed the error).
    None: no cache could be written (the caller validates in its own process, as before)."""
    if role not in PREPARE or not ID_RE.match(node_id):
        return None
    try:
        raw = Path(config_file).read_bytes()
    except OSError:
        raw = None  # the validating process reports it, as check-config does
    if raw is not None:
        key = cache_key(raw, node_id, role)
        cfg = read(cache_path(node_id, key), key)
        if cfg is not None:
            log.debug("configuration of node %s from its cache (%s)", node_id, key[:12])
            return cfg
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "waitroom.nodeconfig", str(config_file), node_id, role],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
            timeout=VALIDATE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:  # a stalled disk or interpreter: do not wait for ever, validate here
        log.warning(
            "validating the configuration took over %d s; node %s validates it itself",
            VALIDATE_TIMEOUT_S,
            node_id,
        )
        return None
    if proc.returncode != 0:
        raise SystemExit(proc.returncode)
    written = proc.stdout.strip().splitlines()
    if not written:
        return None
    return read(Path(written[-1]), None)  # written for the bytes the validating process read


# ------------------------------------------------------------------------------- the validating process
def in_file(exc: ValueError, config_file: str) -> ValueError:
    """A node's own check's error (its options, pins, printer, display settings: raised as the role's or the
    section's ``ConfigError``, or a ``ValueError`` naming its key) as the error of the file that holds them,
    as ``waitroom check-config`` prints it. An error of another file (a pin map of firmware_config/) keeps its
    own file's name."""
    from waitroom.errors import ConfigError

    if isinstance(exc, ConfigError) and Path(exc.source).is_file():
        return exc
    return ConfigError(config_file, exc.errors if isinstance(exc, ConfigError) else [str(exc)])


def write_atomically(path: Path, doc: dict[str, Any], node_id: str) -> None:
    """Write the cache file whole or not at all (a node starting meanwhile reads the old one or none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    for old in path.parent.glob(f"node-{node_id}-*.json"):
        if old != path:
            with contextlib.suppress(OSError):
                old.unlink()  # the cache of an older file of this node


def build(config_file: str, node_id: str, role: str) -> tuple[int, Path | None]:
    """Validate for one node and write its cache: (exit code, cache file or None). Errors go to stderr."""
    from waitroom import config
    from waitroom.errors import ConfigError

    try:
        raw = Path(config_file).read_bytes()
    except OSError as exc:
        print(ConfigError(config_file, [f"(file): cannot read: {exc.strerror}"]), file=sys.stderr)
        return 1, None
    try:
        cfg = config.files_beside(
            config.loads(config.decode_text(raw, config_file), config_file), config_file
        )
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1, None
    try:
        node = cfg.node(node_id)
    except KeyError:
        print(
            f"{config_file}: no node {node_id!r} (nodes: {', '.join(n.id for n in cfg.nodes)})",
            file=sys.stderr,
        )
        return 1, None
    if node.role != role:
        print(f"node {node.id} is a {node.role}, not a {role}", file=sys.stderr)
        return 1, None
    module, _, func = PREPARE[role].partition(":")
    try:
        prepared = getattr(importlib.import_module(module), func)(cfg, node)
    except (ConfigError, ValueError) as exc:  # the node's own settings: named by file, as check-config does
        print(in_file(exc, config_file), file=sys.stderr)
        return 1, None
    key = cache_key(raw, node_id, role)
    path = cache_path(node_id, key)
    try:
        write_atomically(path, encode(cfg, node, prepared, key), node_id)
    except (OSError, TypeError) as exc:
        log.warning("no configuration cache for node %s (%s): it validates in its own process", node_id, exc)
        return 0, None
    return 0, path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[2] not in PREPARE:
        print(f"usage: python -m waitroom.nodeconfig CONFIG NODE {{{','.join(PREPARE)}}}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    code, path = build(*args)
    if path is not None:
        print(path, flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
