"""The README and docs/ are true: every `waitroom ...` command they show parses with the real parser, every
relative link and anchor resolves, every subcommand explains itself in --help, and the configuration
reference lists exactly the keys the validators accept, with their defaults.

The reference (docs/configuration.md) is generated (``python -m waitroom.config_doc``); these tests read the
committed file and check it against the schemas and against ``waitroom check-config`` themselves, so a
generator that leaves out a section, or a schema that rejects what the page shows, fails here.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from waitroom import cli, config
from waitroom.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REFERENCE = ROOT / "docs" / "configuration.md"
FENCE = re.compile(r"^(```|~~~)")
COMMAND = re.compile(r"^(?:\$ )?(?:\S*/)?waitroom (?=[a-z-])")


# ------------------------------------------------------------------------------------------------ commands
def _parser_choices(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _subcommand(words: list[str]) -> tuple[argparse.ArgumentParser, list[str], list[str]]:
    """The innermost subcommand parser the words name, its path and the words after it."""
    p, path = cli.build_parser(), []
    while words and not words[0].startswith("-") and words[0] in _parser_choices(p):
        p = _parser_choices(p)[words[0]]
        path.append(words[0])
        words = words[1:]
    return p, path, words


def _commands() -> list[tuple[str, str, bool]]:
    """(where, command line, whole) for every `waitroom ...` line of a fenced block (whole: it must parse
    as given) and every inline `waitroom ...` code span (a reference: subcommand and options must exist)."""
    found = []
    for doc in DOCS:
        fenced, held = False, ""
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            where = f"{doc.relative_to(ROOT)}:{n}"
            if FENCE.match(line):
                fenced = not fenced
                continue
            if fenced:  # a command starts a line (an indented one is part of a diagram)
                text = (held + " " + line.strip()) if held else line.rstrip()
                held = ""
                if COMMAND.match(text):
                    if text.endswith("\\"):
                        held = text[:-1]
                        continue
                    found.append((where, text, True))
                continue
            for span in re.findall(r"`([^`]+)`", line):
                if COMMAND.match(span):
                    found.append((where, span, False))
    return found


COMMANDS = _commands()


def _words(line: str) -> list[str]:
    line = re.sub(r"^\$ ", "", line)
    line = re.split(r"\s+#\s", line)[0]  # a shell comment
    return shlex.split(line)[1:]


def test_the_docs_show_waitroom_commands():
    assert sum(whole for *_, whole in COMMANDS) >= 15 and len(COMMANDS) >= 60


@pytest.mark.parametrize("where,line", [(w, c) for w, c, whole in COMMANDS if whole])
def test_every_command_line_in_a_block_parses(where, line):
    words = _words(line)
    try:
        cli.build_parser().parse_args(words)
    except SystemExit as exc:
        pytest.fail(f"{where}: `{line}` does not parse (exit {exc.code})")


@pytest.mark.parametrize("where,span", [(w, c) for w, c, whole in COMMANDS if not whole])
def test_every_inline_command_names_a_real_subcommand_and_options(where, span):
    alternatives = re.sub(r"\\\|", "|", span)
    words = _words(alternatives.replace("[", " ").replace("]", " "))
    first = words[0].split("|")  # `waitroom db check|backup|...` names several subcommands
    for head in first:
        p, path, rest = _subcommand([head, *words[1:]])
        assert path, f"{where}: `{span}`: {head!r} is not a waitroom subcommand"
        if rest and "|" in rest[0] and _parser_choices(p):
            for option in rest[0].split("|"):
                assert option in _parser_choices(p), f"{where}: `{span}`: no `{' '.join(path)} {option}`"
            continue
        for word in rest:
            flag = word.split("=")[0]
            if flag.startswith("--"):
                assert flag in p._option_string_actions, (
                    f"{where}: `{span}`: {flag} is not an option of {path}"
                )


# --------------------------------------------------------------------------------------------------- links
def _anchors(doc: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    out: set[str] = set()
    counts: dict[str, int] = {}
    fenced = False
    for line in doc.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        m = None if fenced else re.match(r"#{1,6}\s+(.*)", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            n = counts.get(slug, 0)
            counts[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _links() -> list[tuple[str, Path, str]]:
    found = []
    for doc in [*DOCS, *ROOT.glob("*/README.md")]:
        text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if not re.match(r"[a-z]+:", target):
                found.append((str(doc.relative_to(ROOT)), doc, target))
    return found


@pytest.mark.parametrize("where,doc,target", _links())
def test_relative_links_and_anchors_resolve(where, doc, target):
    path, _, anchor = target.partition("#")
    file = (doc.parent / path).resolve() if path else doc
    assert file.exists(), f"{where}: link {target} names a missing file"
    if anchor and file.suffix == ".md":
        assert anchor in _anchors(file), f"{where}: link {target}: no such heading in {file.name}"


def test_section_references_in_prose_name_real_headings():
    """`docs/x.md, "Heading"` in running text names a heading that exists (a renamed section leaves none)."""
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for name, title in re.findall(r"(?:docs/)?([a-z-]+\.md)\)?,? \"([^\"]+)\"", text):
            target = ROOT / "docs" / name if (ROOT / "docs" / name).exists() else ROOT / name
            headings = {
                re.sub(r"^#+\s+", "", h).strip()
                for h in target.read_text(encoding="utf-8").splitlines()
                if h.startswith("#")
            }
            assert any(h == title or h.startswith(title + " (") for h in headings), (
                f'{doc.name}: {name}, "{title}" is not a heading of {name}'
            )


# ---------------------------------------------------------------------------------------------- --help texts
def _all_subcommands() -> list[tuple[str, argparse.ArgumentParser, str | None]]:
    out = []

    def walk(p: argparse.ArgumentParser, path: list[str]) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                for name, sub in action.choices.items():
                    out.append((" ".join([*path, name]), sub, helps.get(name)))
                    walk(sub, [*path, name])

    walk(cli.build_parser(), [])
    return out


@pytest.mark.parametrize(
    "name,sub,summary", _all_subcommands(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_subcommand_explains_itself(name, sub, summary):
    """`waitroom COMMAND --help` says what the command does, and every argument says what it takes."""
    assert summary, f"`waitroom {name}` has no one-line help in `waitroom --help`"
    assert sub.description, f"`waitroom {name} --help` has no description"
    text = sub.format_help()
    assert "%%" not in text, f"`waitroom {name} --help` shows a doubled %"
    for action in sub._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        label = "/".join(action.option_strings) or action.dest
        assert action.help, f"`waitroom {name} --help`: {label} has no help text"


def test_the_readme_command_table_lists_every_subcommand():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    for name in _parser_choices(cli.build_parser()):
        assert f"`waitroom {name}" in table, f"README's command table lacks `waitroom {name}`"


# ------------------------------------------------------------------------------------ configuration reference
def _reference() -> dict[str, dict[str, tuple[str, str]]]:
    """docs/configuration.md as {section path: {key: (type, default)}}."""
    sections: dict[str, dict[str, tuple[str, str]]] = {}
    current = None
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = line[3:].strip().strip("`")
            sections[current] = {}
        elif current and line.startswith("| `"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            sections[current][cells[0].strip("`")] = (cells[1], cells[2])
    return sections


def _schemas() -> dict[str, Any]:
    """Section path -> the model (or option table) that validates it, for every section a process checks."""
    from displays.settings import DisplaySettings, Fonts, Theme
    from edge import counter
    from edge.dispenser.schema import DispenserOptions
    from ticket_printer import settings as printer
    from waitroom.web.settings import WebSettings

    return {
        "Top level": config.Config,
        "office": config.OfficeInfo,
        "office.pause_reasons[]": config.PauseReason,
        "services[]": config.Service,
        "counters[]": config.Counter,
        "nodes[]": config.Node,
        "nodes[].options (dispenser)": DispenserOptions,
        "nodes[].options (counter)": {**counter.OPTIONS, "hardware": None},
        "nodes[].options (assist)": {**counter.ASSIST_OPTIONS, "hardware": None},
        "broker": config.Broker,
        "broker.tls": config.Tls,
        "controller": config.ControllerSettings,
        "steering": config.Steering,
        "steering.service_levels.<key>": config.ServiceLevel,
        "steering.default_service_level": config.ServiceLevel,
        "steering.priority": config.PriorityRules,
        "steering.appointments": config.AppointmentRules,
        "steering.conditions[]": config.SteeringCondition,
        "steering.intake_stop": config.IntakeStopRules,
        "display": DisplaySettings,
        "display.fonts": Fonts,
        "display.colors": Theme,
        "printer": printer.PrinterSettings,
        "printer.usb": printer.UsbSettings,
        "printer.serial": printer.SerialSettings,
        "printer.network": printer.NetworkSettings,
        "printer.file": printer.FileSettings,
        "printer.preview": printer.PreviewSettings,
        "web": WebSettings,
        "appointments": config.AppointmentSettings,
        "appointments.booking_system": config.AppointmentImport,
        "appointments.booking_system.csv": config.CsvImport,
        "appointments.booking_system.csv.columns": config.CsvColumns,
        "remote_tickets": config.RemoteTicketRules,
    }


def _keys(schema: Any) -> dict[str, Any]:
    """key -> default (``...`` when required) of a model or an option table."""
    if isinstance(schema, dict):
        return {k: (v[0] if v else None) for k, v in schema.items()}
    out = {}
    for name, f in schema.model_fields.items():
        out[f.alias or name] = ... if f.is_required() else f.get_default(call_default_factory=True)
    return out


def test_the_reference_documents_every_key_every_validator_accepts():
    doc = _reference()
    for path, schema in _schemas().items():
        assert path in doc, f"docs/configuration.md has no section {path}"
        assert set(doc[path]) == set(_keys(schema)), (
            f"docs/configuration.md, {path}: documented {sorted(doc[path])}, accepted {sorted(_keys(schema))}"
        )


def test_the_reference_shows_the_real_defaults():
    doc = _reference()
    for path, schema in _schemas().items():
        for key, default in _keys(schema).items():
            cell = doc[path][key][1]
            if default is ...:
                assert cell == "**required**", f"{path}.{key}: required, documented default {cell}"
                continue
            if cell == "the defaults below":
                assert isinstance(default, BaseModel), f"{path}.{key}: default {default!r}, not a mapping"
                continue
            shown = json.loads(cell.strip("`"))
            plain = default.model_dump() if hasattr(default, "model_dump") else default
            if isinstance(plain, list) and plain and hasattr(plain[0], "model_dump"):
                plain = [x.model_dump() for x in plain]
            assert shown == json.loads(json.dumps(plain, default=str)), f"{path}.{key}: {cell} vs {default!r}"


def _example() -> dict[str, Any]:
    return yaml.safe_load(config.EXAMPLE_CONFIG.read_text(encoding="utf-8"))


def _node_options(data: dict[str, Any], role: str) -> dict[str, Any]:
    node = next(n for n in data["nodes"] if n["role"] == role)
    return node.setdefault("options", {})


def _place(data: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The mapping at a reference section's path in an office file (created where it may be empty), or None
    for a list item or map value the example has none of."""
    m = re.fullmatch(r"nodes\[\]\.options \((\w+)\)", path)
    if m:
        return _node_options(data, m.group(1))
    if path == "Top level":
        return data
    target: Any = data
    for part in path.split("."):
        if part == "<key>":
            target = next(iter(target.values()), None) if target else None
        elif part.endswith("[]"):
            items = target.setdefault(part[:-2], [])
            target = items[0] if items else None
        else:
            target = target.setdefault(part, {}) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            return None
    return target


# What a section needs beside the key under test when the example office has no such section.
REQUIRED = {"broker.tls": {"ca": "ca.crt"}}


def _errors(data: dict[str, Any]) -> list[str]:
    """What `waitroom check-config` reports for this office file ([] when it passes)."""
    try:
        cfg = config.parse(copy.deepcopy(data))
    except ConfigError as exc:
        return exc.errors
    return cli.check_sections(cfg)


def test_no_documented_default_is_rejected():
    """Every key the reference shows with a plain default, written into the example office with that default,
    passes `waitroom check-config`'s checks."""
    tried = 0
    for path, rows in _reference().items():
        for key, (_, cell) in rows.items():
            if not (cell.startswith("`") and cell.endswith("`")) or path in ("Top level", "printer"):
                continue
            data = _example()
            if path.startswith("printer.") and path != "printer.preview":  # needs its backend's required keys
                continue
            place = _place(data, path)
            if place is None:
                continue
            place.update(REQUIRED.get(path, {}))
            place[key] = json.loads(cell.strip("`"))
            assert _errors(data) == [], f"{path}.{key}: {cell} is documented but rejected: {_errors(data)}"
            tried += 1
    assert tried >= 150


@pytest.mark.parametrize(
    "path,needle",
    [
        ("office", "office.no_such_key"),
        ("display", "display.no_such_key"),
        ("display.fonts", "display.fonts.no_such_key"),
        ("printer", "printer.no_such_key"),
        ("printer.preview", "printer.preview.no_such_key"),
        ("web", "web.no_such_key"),
        ("nodes[].options (dispenser)", "nodes[0].options.no_such_key"),
        ("nodes[].options (counter)", "nodes[2].options.no_such_key"),
        ("nodes[].options (assist)", "nodes[6].options.no_such_key"),
        ("nodes[].options (display)", "nodes[1].options.no_such_key"),
        ("appointments.booking_system.csv.columns", "appointments.booking_system.csv.columns.no_such_key"),
    ],
)
def test_check_config_names_an_unknown_key_in_every_section(path, needle):
    """Before, `display:`, `printer:`, `web:` and the nodes' `options` were checked only when the process
    that uses them started: check-config (and Ansible's validate step) passed a misspelt key."""
    data = _example()
    place = _place(data, path)
    assert place is not None
    place["no_such_key"] = 1
    errors = _errors(data)
    assert len(errors) == 1 and errors[0].startswith(needle + ":"), errors


def _yaml_snippets() -> list[tuple[str, str]]:
    """(where, text) of every ```yaml block of the docs (indented ones in lists too)."""
    found = []
    for doc in DOCS:
        lines, block, start, indent = doc.read_text(encoding="utf-8").splitlines(), None, 0, 0
        for n, line in enumerate(lines, 1):
            stripped = line.strip()
            if block is None and stripped == "```yaml":
                block, start, indent = [], n, len(line) - len(line.lstrip())
            elif block is not None and stripped == "```":
                found.append((f"{doc.relative_to(ROOT)}:{start}", "\n".join(x[indent:] for x in block)))
                block = None
            elif block is not None:
                block.append(line)
    return found


def _merged(base: Any, part: Any) -> Any:
    if isinstance(base, dict) and isinstance(part, dict):
        return {**base, **{k: _merged(base.get(k), v) for k, v in part.items()}}
    return part


@pytest.mark.parametrize(("where", "text"), _yaml_snippets(), ids=[w for w, _ in _yaml_snippets()])
def test_every_yaml_snippet_of_the_docs_passes_check_config_in_the_example_office(where, text):
    """A snippet copied into the example office as shown is a valid office file."""
    snippet = yaml.safe_load(text)
    assert isinstance(snippet, dict), where
    assert _errors(_merged(_example(), snippet)) == [], where


def test_check_config_command_reports_every_section_at_once(tmp_path):
    data = _example()
    data["display"] = {"blink_sec": 3}
    data["printer"] = {"backend": "netwrk"}
    data["web"] = {"session_hours": 0}
    _node_options(data, "counter")["long_press_s"] = 99
    _node_options(data, "dispenser")["scaner"] = "-"
    path = tmp_path / "office.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "waitroom", "check-config", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 1, done.stdout
    lines = done.stderr.strip().splitlines()
    assert lines[0] == f"{path}: 5 configuration error(s):", done.stderr
    keys = sorted(line.strip().split(":")[0] for line in lines[1:])
    assert keys == [
        "display.blink_sec",
        "nodes[0].options.scaner",
        "nodes[2].options.long_press_s",
        "printer.backend",
        "web.session_hours",
    ], done.stderr


def test_the_node_commands_name_nodes_of_the_example_office():
    """`waitroom node ROLE --node ID` in the docs runs against the bundled example office as written."""
    cfg = config.load(config.EXAMPLE_CONFIG)
    roles = {n.id: n.role for n in cfg.nodes}
    checked = 0
    for where, line, _ in COMMANDS:
        words = _words(line)
        if words[:1] == ["node"] and "--node" in words and words[1] in cli.NODE_ROLES:
            node = words[words.index("--node") + 1]
            assert roles.get(node) == words[1], (
                f"{where}: `{line}`: the example office has no {words[1]} {node}"
            )
            checked += 1
    assert checked >= 8


def test_the_city_configuration_table_matches_the_city_schema():
    """docs/city-api.md, "The city configuration": every key the city schema accepts, and nothing else."""
    from waitroom.city import config as city

    text = (ROOT / "docs" / "city-api.md").read_text(encoding="utf-8")
    table = text.split("## The city configuration", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for row in re.findall(r"^\| (`[^|]+)\|", table, flags=re.M):
        documented |= {k for k in re.findall(r"`([^`]+)`", row)}
    expanded = {"city": city.CityInfo, "offices[]": city.CityOffice, "steering": city.SteeringRules}
    expanded["web"] = city.CityWeb
    accepted = set()
    for name in city.CityConfig.model_fields:
        key = f"{name}[]" if name in ("offices", "services") else name
        model = expanded.get(key)
        if model is None:
            accepted.add(key)
        else:
            accepted |= {f"{key}.{f}" for f in model.model_fields}
    assert documented == accepted, (
        f"documented only: {documented - accepted}; not documented: {accepted - documented}"
    )


def test_python_modules_and_make_targets_named_in_the_docs_exist():
    """`python -m MODULE ...` names a runnable module, `make TARGET` a target of the Makefile."""
    from importlib.util import find_spec

    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, flags=re.M))
    seen = 0
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for module in re.findall(r"`python3? -m ([\w.]+)", text):
            spec = find_spec(module)
            runnable = spec and (spec.submodule_search_locations is None or find_spec(f"{module}.__main__"))
            assert runnable, f"{doc.name}: `python -m {module}` is not a runnable module"
            seen += 1
        for target in re.findall(r"`make ([a-z][\w-]*)", text):
            assert target in targets, f"{doc.name}: `make {target}` is not a Makefile target"
            seen += 1
    assert seen >= 10


def test_files_named_in_the_docs_exist():
    """A file or folder of the repository named in backticks (`displays/assets/gong.wav`) exists."""
    roots = (
        "waitroom|edge|displays|ticket_printer|firmware_config|mqtt_broker|bench|tests|scripts|ansible|docs"
    )
    named = re.compile(rf"`((?:{roots})/[\w./-]+)`")
    seen = 0
    for doc in DOCS:
        for path in named.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"waitroom/v\d", path):  # an MQTT topic (waitroom/v1/<office>/...)
                continue
            assert (ROOT / path.rstrip("/")).exists(), f"{doc.name}: `{path}` does not exist"
            seen += 1
    assert seen >= 20


def test_configuration_keys_named_in_the_docs_exist():
    """A key of the office file named in the docs (`steering.appointments.grace_min`) is in the reference, so
    a reader who writes it where it says gets no "unknown key" (the city's own file is in docs/city-api.md,
    the MQTT payloads in docs/mqtt-contract.md)."""
    known = set()
    for section, rows in _reference().items():
        base = re.sub(r" \(\w+\)$", "", section.replace("[]", "").replace(".<key>", ""))
        known |= {key if section == "Top level" else f"{base}.{key}" for key in rows}
    tops = "|".join(config.Config.model_fields)
    named = re.compile(rf"`((?:{tops})(?:\[\d*\])?(?:\.[a-z_]+(?:\[\d*\])?)+)`")
    seen = 0
    for doc in DOCS:
        if doc.name in ("configuration.md", "city-api.md", "mqtt-contract.md"):
            continue
        for token in named.findall(doc.read_text(encoding="utf-8")):
            key = re.sub(r"\[\d*\]", "", token)
            if key.rsplit(".", 1)[-1] in ("py", "yaml", "yml", "crt", "key", "pem", "json"):  # a file name
                continue
            assert key in known or any(k.startswith(key + ".") for k in known), (
                f"{doc.name}: `{token}` is not a key of the office configuration (docs/configuration.md)"
            )
            seen += 1
    assert seen >= 15


def test_check_config_leaves_the_logo_file_to_the_node(tmp_path):
    """A printer logo is looked for where the dispenser runs (README, "Status and known limits"):
    check-config, which Ansible runs on the file before it is in place, does not refuse a logo it cannot
    see."""
    data = _example()
    data["printer"] = {"logo": str(tmp_path / "logo-on-the-pi.png")}
    assert _errors(data) == []
    data["printer"]["logo_size"] = 1
    assert _errors(data) == ["printer.logo_size: unknown key (check the spelling)"]


def test_every_environment_variable_the_code_reads_is_in_the_configuration_reference():
    """docs/configuration.md lists the WAITROOM_* variables; a new one the code reads is listed too."""
    from waitroom import config_doc

    read = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*["'](WAITROOM_[A-Z_]+)["']""")
    named = re.compile(r"""^[A-Z_]*ENV\s*=\s*["'](WAITROOM_[A-Z_]+)["']""", re.M)
    found: set[str] = set()
    for package in ("waitroom", "edge", "displays", "ticket_printer", "mqtt_broker", "firmware_config"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            found |= set(read.findall(text)) | set(named.findall(text))
    listed = {name for name, _, _ in config_doc.ENVIRONMENT}
    assert found - listed == set(), "add them to config_doc.ENVIRONMENT"
    assert listed - found == set(), "the code no longer reads these"
    doc = (ROOT / "docs/configuration.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in doc for name in listed)


def test_the_benchmarks_say_what_they_measure_and_refuse_arguments_they_do_not_take():
    """``python -m bench --help`` lists every benchmark with its first line; a script that takes no
    arguments answers -h with its docstring and refuses others at once, instead of a run of minutes."""
    run = [sys.executable, "-m", "bench", "--help"]
    out = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout
    for script in sorted((ROOT / "bench").glob("bench_*.py")):
        assert script.stem.removeprefix("bench_") in out, script.stem
    sim = [sys.executable, str(ROOT / "bench/bench_sim.py")]
    helped = subprocess.run([*sim, "-h"], capture_output=True, text=True, timeout=60, check=False)
    assert helped.returncode == 0 and "Ciw" in helped.stdout
    refused = subprocess.run([*sim, "--days", "3"], capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and "takes no arguments" in refused.stderr
    nothing = subprocess.run(
        [sys.executable, "-m", "bench", "nosuch"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert nothing.returncode == 2 and "no benchmark matches nosuch" in nothing.stderr
