"""Generate docs/configuration.md from the configuration models (every key, type, default, description).

``python -m waitroom.config_doc`` rewrites the file; a test checks the committed file is up to date.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from waitroom import config

ID_PATTERN = config.ID_RE.pattern
HHMM_PATTERN = config.HHMM_PATTERN
HARDWARE = (
    "pin map revision of `firmware_config/pinmaps/<role>.yaml` (e.g. `mini`); default: the map's `default`"
)
COLORS = (
    "Single colours of the theme, each `[red, green, blue]` 0..255; the defaults are those of the "
    "`contrast` theme (`dark` and `light` have their own)."
)
# Sections validated by the process that uses them (the display, the dispenser's printer, the web app), with
# their model ("module:Model") and an introduction; ``waitroom check-config`` validates them as well.
SECTIONS: dict[str, tuple[str, str]] = {
    "display": (
        "displays.settings:DisplaySettings",
        "The call display and its announcements. A display node's `options` override these key by key.",
    ),
    "printer": (
        "ticket_printer.settings:PrinterSettings",
        "The dispensers' ticket printer. The section named by `backend` is required (except for `preview`).",
    ),
    "web": ("waitroom.web.settings:WebSettings", "The web app (`waitroom web`)."),
}

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

HEADER = """# Office configuration reference

One YAML file per office (example: `waitroom/examples/office.yaml`). Unknown keys are errors, and so is a key
written twice in one section (YAML would keep the second silently); every error is reported with its path,
e.g. `counters[2].services[0]: unknown service 'nix'`. Check a file before a node restarts with
`waitroom check-config FILE` (exit code 1 on errors): it checks every section below, also those a process
validates only when it starts (`display`, `printer`, `web`, each node's `options` and `pins`).
Types: *id* is 1-32 characters of `a-z 0-9 _ -`; *HH:MM* a time of day, quoted or not (`7:30` is read as
`07:30`); a range such as `(0..899)` is the values the file may give.

A counter, assistance, dispenser or display node validates the file in a short-lived process when it starts
and keeps the result in `<data dir>/cache/node-<id>-<key>.json` (data dir: `$WAITROOM_DATA_DIR`, else
`./var`); the key is the hash of the file's bytes and of the schema, so a changed file is validated again at
the next start, and an error ends the node's start with the same messages as `check-config`
(docs/architecture.md).

This page is generated from the models in the code (`python -m waitroom.config_doc`); a test keeps it current.
"""


def _limits(metadata: list[Any]) -> str:
    """The bounds a field's validator enforces, e.g. " (0..899)" or " (> 0, ≤ 240)"; "" when none."""
    lo = hi = None
    parts: list[str] = []
    for m in metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None:
                if attr == "ge":
                    lo = v
                elif attr == "le":
                    hi = v
                parts.append(f"{sign} {v}")
        least, most = getattr(m, "min_length", None), getattr(m, "max_length", None)
        if least is not None and least == most:
            parts.append(f"length {least}")
        elif least is not None:
            parts.append(f"at least {least}")
        if most is not None and most != least:
            parts.append(f"at most {most}")
        if getattr(m, "pattern", None) is not None:
            pattern = m.pattern
            parts.append({ID_PATTERN: "id", HHMM_PATTERN: "HH:MM"}.get(pattern, f"`{pattern}`"))
    if lo is not None and hi is not None and len(parts) == 2:
        return f" ({lo}..{hi})"
    return f" ({', '.join(parts)})" if parts else ""


def _type_name(tp: object) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        meta = [m for a in args[1:] for m in getattr(a, "metadata", [a])]
        return _type_name(args[0]) + _limits(meta)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " / ".join(json.dumps(a) for a in args)
    if origin is tuple and args and args[-1] is not Ellipsis:
        inner = {_type_name(a) for a in args}
        return f"list of {len(args)} {inner.pop()}" if len(inner) == 1 else "list"
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"map {_type_name(args[0])} -> {_type_name(args[1])}" if args else "map"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "text (see Texts)" if tp.__name__ == "Texts" else "mapping (below)"
    if tp is typing.Any:
        return "any"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _models_in(tp: object) -> list[tuple[str, type[BaseModel]]]:
    """The models inside a field's type with the path suffix of each: "" (a mapping), "[]" (a list's items)
    or ".<key>" (a map's values)."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [("", tp)]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    suffix = "[]" if origin in (list, tuple) else ".<key>" if origin is dict else ""
    found: list[tuple[str, type[BaseModel]]] = []
    for a in args[1:] if origin is dict else args:
        found += [(suffix + inner, m) for inner, m in _models_in(a)]
    return found


def _describe(model: type[BaseModel]) -> str:
    """A model's docstring, its first paragraph on one line."""
    return " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())


def _sentence(text: str | None) -> str:
    text = (text or "").strip()
    return text[:1].upper() + text[1:] + ("." if text and not text.endswith(".") else "")


def _default(f: Any) -> str:
    """The field's real default as JSON: ``**required**``, or the value; a nested mapping of defaults is
    "the defaults below"."""
    if f.is_required():
        return "**required**"
    value = f.get_default(call_default_factory=True)
    if isinstance(value, BaseModel) and value == type(value)():
        return "the defaults below"
    value = value.model_dump() if isinstance(value, BaseModel) else value
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        value = [v.model_dump() for v in value]
    return f"`{json.dumps(value, ensure_ascii=False, default=str)}`"


def _section(
    model: type[BaseModel], path: str, out: list[str], seen: set[str], intro: str | None = None
) -> None:
    out += [f"## `{path}`", "", intro if intro is not None else _describe(model), ""]
    out += ["| key | type | default | description |", "|---|---|---|---|"]
    children: list[tuple[str, type[BaseModel]]] = []
    for name, f in model.model_fields.items():
        key = f.alias or name
        desc = (f.description or "").replace("|", "\\|")
        if f.examples:
            desc += f" Example: `{json.dumps(f.examples[0], ensure_ascii=False)}`"
        kind = (_type_name(f.annotation) + _limits(f.metadata)).replace("|", "\\|")
        out.append(f"| `{key}` | {kind} | {_default(f)} | {desc.strip()} |")
        for suffix, sub in _models_in(f.annotation):
            if sub.__name__ not in seen:
                children.append((f"{path}.{key}{suffix}", sub, f.description))
    out.append("")
    for key, sub, field_doc in children:  # a model without a docstring is introduced by its field's text
        _section(sub, key, out, seen, intro=None if sub.__doc__ else _sentence(field_doc))


def _options_table(path: str, intro: str, table: dict[str, tuple[float, float, float, str]]) -> list[str]:
    """A node role's options that are checked without a model (``edge.counter.OPTIONS``)."""
    out = [f"## `{path}`", "", intro, "", "| key | type | default | description |", "|---|---|---|---|"]
    for name, (default, lo, hi, desc) in table.items():
        kind = "int" if isinstance(default, int) else "float"
        out.append(f"| `{name}` | {kind} ({lo}..{hi}) | `{default}` | {desc} |")
    out.append(f"| `hardware` | str or null | `null` | {HARDWARE} |")
    return [*out, ""]


def _model(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def generate() -> str:
    out = [HEADER, "## Top level", "", "| key | type | default | description |", "|---|---|---|---|"]
    for name, f in config.Config.model_fields.items():
        kind = _type_name(f.annotation) + _limits(f.metadata)
        models = _models_in(f.annotation)
        desc = f.description or (_describe(models[0][1]) if models else "")
        if name in SECTIONS:
            kind, desc = "mapping (below)", SECTIONS[name][1]
        out.append(f"| `{name}` | {kind} | {_default(f)} | {desc} |")
    out.append("")
    seen: set[str] = {"Texts"}
    for name, f in config.Config.model_fields.items():
        if name in SECTIONS:
            ref, intro = SECTIONS[name]
            _section(_model(ref), name, out, seen, intro)
        for suffix, sub in _models_in(f.annotation)[:1]:
            _section(sub, name + suffix, out, seen, intro=None if sub.__doc__ else _sentence(f.description))
        if name == "display":
            _section(_model("displays.settings:Theme"), "display.colors", out, seen, COLORS)
        if name == "nodes":
            _node_options(out, seen)
    out += [
        "## Texts",
        "",
        'A user-facing text: `{de: "...", en: "...", tr: "...", ar: "...", uk: "...", ru: "...", '
        'de-LS: "..."}`; '
        "German is required, every other language falls back to German (de-LS: Leichte Sprache).",
        "",
        "## Environment variables",
        "",
        "Read by the commands in place of an option (the option wins) or for a secret that stays out of the "
        "office file; the Ansible roles set them in `/etc/waitroom/<unit>.env` (mode 0640).",
        "",
        "| variable | read by | meaning |",
        "|---|---|---|",
        *(f"| `{name}` | {who} | {what} |" for name, who, what in ENVIRONMENT),
        "",
    ]
    return "\n".join(out)


# the environment variables the commands read (tests/test_docs.py checks that the code reads no other)
ENVIRONMENT = (
    ("WAITROOM_CONFIG", "every command", "the office file (`--config`); default: the bundled example office"),
    ("WAITROOM_DATA_DIR", "every command", "the data folder (`--data-dir`); default `./var`"),
    ("WAITROOM_LOG_LEVEL", "every command", "`DEBUG`, `INFO` (default), `WARNING`, `ERROR` (`--log-level`)"),
    (
        "WAITROOM_MQTT_PASSWORD",
        "every node",
        "this node's MQTT password; wins over `broker.password_file`",
    ),
    ("WAITROOM_SECRET_KEY", "`waitroom web`", "the key that signs the sessions; wins over `web.secret_key`"),
    (
        "WAITROOM_WEB_WORKERS",
        "`waitroom web` (set by it)",
        "the number of workers, so that each takes its own MQTT account; not to be set by hand",
    ),
    (
        "WAITROOM_USER_PASSWORD",
        "`waitroom web create-admin`, `add-user`",
        "the new account's password, instead of the prompt (scripts)",
    ),
    ("WAITROOM_CITY_CONFIG", "`waitroom city`", "the city file (`--config`)"),
    (
        "WAITROOM_EVAL_REFERENCE",
        "`waitroom predict-eval`",
        "the reference `classical_predictors.py` (`--reference`); default `../shared/eval/`",
    ),
    ("WAITROOM_CLOCK_FILE", "`waitroom controller`", "tests only: the time from the epoch seconds in a file"),
)


def _node_options(out: list[str], seen: set[str]) -> None:
    from edge import counter

    _section(
        _model("edge.dispenser.schema:DispenserOptions"),
        "nodes[].options (dispenser)",
        out,
        seen,
        "A dispenser's settings. Pins come from `firmware_config/pinmaps/dispenser.yaml` (revision "
        "`options.hardware`), single pins are changed with the node's `pins`.",
    )
    out += _options_table("nodes[].options (counter)", "A counter node's settings.", counter.OPTIONS)
    out += _options_table(
        "nodes[].options (assist)", "An assistance node's settings.", counter.ASSIST_OPTIONS
    )
    out += [
        "## `nodes[].options (display)`",
        "",
        "Any key of the `display` section below: a display node's options override the office's section "
        "key by key (e.g. one portrait TV).",
        "",
    ]


def main() -> int:
    text = generate()
    if "--check" in sys.argv:
        return 0 if DOC.exists() and DOC.read_text(encoding="utf-8") == text else 1
    DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
