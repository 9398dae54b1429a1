"""Generate docs/configuration.md from the configuration models (every key, type, default, description).

``python -m waitroom.config_doc`` rewrites the file; a test checks the committed file is up to date.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from waitroom import config

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

HEADER = """# Office configuration reference

One YAML file per office (example: `waitroom/examples/office.yaml`). Unknown keys are errors; every error is
reported with its path, e.g. `counters[2].services[0]: unknown service 'nix'`. Check a file before a node
restarts with `waitroom check-config FILE` (exit code 1 on errors).

A counter, assistance, dispenser or display node validates the file in a short-lived process when it starts
and keeps the result in `<data dir>/cache/node-<id>-<key>.json` (data dir: `$WAITROOM_DATA_DIR`, else
`./var`); the key is the hash of the file's bytes and of the schema, so a changed file is validated again at
the next start, and an error ends the node's start with the same messages as `check-config`
(docs/architecture.md).

This page is generated from the models in the code (`python -m waitroom.config_doc`); a test keeps it current.
"""


def _type_name(tp: object) -> str:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return " / ".join(json.dumps(a) for a in args)
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"map {_type_name(args[0])} -> {_type_name(args[1])}" if args else "map"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "mapping (below)"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _models_in(tp: object) -> list[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    found: list[type[BaseModel]] = []
    for a in typing.get_args(tp):
        found += _models_in(a)
    return found


def _section(model: type[BaseModel], path: str, out: list[str], seen: set[str]) -> None:
    out += [
        f"## `{path}`",
        "",
        (model.__doc__ or "").strip().split("\n")[0],
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
    ]
    children: list[tuple[str, type[BaseModel]]] = []
    for name, f in model.model_fields.items():
        if f.is_required():
            default = "**required**"
        elif f.default is not PydanticUndefined:
            default = f"`{json.dumps(f.default, ensure_ascii=False, default=str)}`"
        else:
            value = f.get_default(call_default_factory=True)
            value = value.model_dump() if isinstance(value, BaseModel) else value
            default = f"`{json.dumps(value, ensure_ascii=False, default=str)}`"
            if len(default) > 60:
                default = "(see below)" if _models_in(f.annotation) else "(see example)"
        desc = (f.description or "").replace("|", "\\|")
        if f.examples:
            desc += f" Example: `{json.dumps(f.examples[0], ensure_ascii=False)}`"
        out.append(f"| `{name}` | {_type_name(f.annotation)} | {default} | {desc} |")
        for sub in _models_in(f.annotation):
            key = f"{path}.{name}"
            if sub.__name__ not in seen:
                children.append((key, sub))
    out.append("")
    for key, sub in children:
        seen.add(sub.__name__)
        _section(sub, key, out, seen)


def generate() -> str:
    out = [HEADER]
    seen: set[str] = {"Texts"}
    for name, f in config.Config.model_fields.items():
        models = _models_in(f.annotation)
        if models:
            _section(
                models[0], name if typing.get_origin(f.annotation) is not list else f"{name}[]", out, seen
            )
        else:
            out += [f"## `{name}`", "", f.description or "", ""]
    out += [
        "## Texts",
        "",
        'A user-facing text: `{de: "...", en: "...", tr: "...", ar: "...", uk: "...", ru: "...", '
        'de-LS: "..."}`; '
        "German is required, every other language falls back to German (de-LS: Leichte Sprache).",
        "",
    ]
    return "\n".join(out)


def main() -> int:
    text = generate()
    if "--check" in sys.argv:
        return 0 if DOC.exists() and DOC.read_text(encoding="utf-8") == text else 1
    DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
