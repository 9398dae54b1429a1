"""`waitroom simulate --lang`: the report and the printed tables in the office's language (German unless
asked otherwise), numbers written as the language writes them in Latin digits, Arabic right to left, and the
JSON the same bytes in every language."""

from __future__ import annotations

import contextlib
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from waitroom import i18n
from waitroom.cli import main
from waitroom.sim.engine import PREDICTORS

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "waitroom" / "examples" / "scenarios" / "mitte-monday.yaml"
# two short days, two rule sets: enough for every table and chart, a few seconds per language
ARGS = ["simulate", str(SCENARIO), "-r", "2", "--seed", "3", "--rule-set", "current", "--rule-set", "fifo"]


class Page(HTMLParser):
    """The text a reader sees (text nodes, image descriptions) by element, and the attributes of <html>."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.root: dict[str, str | None] = {}
        self.texts: list[tuple[str, str]] = []  # (element, text)
        self._open: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html":
            self.root = dict(attrs)
        self._open.append(tag)
        self.texts += [(tag, v) for k, v in attrs if k in ("alt", "title", "aria-label") and v]

    def handle_endtag(self, tag: str) -> None:
        while self._open and self._open.pop() != tag:
            pass

    def handle_data(self, data: str) -> None:
        if data.strip() and (not self._open or self._open[-1] != "style"):
            self.texts.append((self._open[-1] if self._open else "", data.strip()))

    def of(self, *tags: str) -> list[str]:
        return [text for tag, text in self.texts if tag in tags]


def simulate(folder: Path, *extra: str) -> tuple[str, Page, bytes]:
    """Run the command; its printed output, the HTML report and the --json file."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main([*ARGS, "--out", str(folder), "--json", str(folder / "r.json"), *extra])
    assert code == 0
    page = Page((folder / "index.html").read_text(encoding="utf-8"))
    return out.getvalue(), page, (folder / "r.json").read_bytes()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, Page, bytes]]:
    base = tmp_path_factory.mktemp("reports")
    found = {lang: simulate(base / lang, "--lang", lang) for lang in ("de", "en", "ar")}
    found["default"] = simulate(base / "default")
    return found


DECIMAL_POINT = re.compile(r"\d\.\d{1,2}(?!\d)")  # "12.3", not the German thousands of "2.008"
DECIMAL_COMMA = re.compile(r"\d,\d{1,2}(?!\d)")  # "12,3", not the English thousands of "2,008"


def test_german_report_has_german_headings_and_decimal_commas(runs) -> None:
    printed, page, _ = runs["de"]
    assert page.root == {"lang": "de", "dir": "ltr"}
    assert page.of("h1") == ["Was wäre, wenn …?"]
    assert page.of("h2") == ["Alle Anliegen", "Vergleich: Mittel über die Tage [95-%-Vertrauensbereich]"]
    assert "Wie konfiguriert: Nach Anliegen" in page.of("h3")
    assert {"Regelwerk", "Mittel", "Ziel erreicht", "Auslastung", "Gegangen/Tag"} <= set(page.of("th"))
    cells = page.of("td")
    assert [c for c in cells if DECIMAL_COMMA.search(c)], cells
    assert [c for c in cells if DECIMAL_POINT.search(c)] == []
    assert any(re.fullmatch(r"\d+\xa0%", c) for c in cells), cells  # "66 %": German puts a space before %
    assert "Termine: aufgerufen höchstens 5 Min. nach der Terminzeit" in page.of("th")
    assert page.of("figcaption")[0] == "Mittlere Wartezeit (Balken) und 90-%-Wert (Strich) in Minuten"
    # the printed tables too
    assert printed.splitlines()[1].split()[0] == "Regelwerk" and "Wie konfiguriert" in printed
    assert DECIMAL_COMMA.search(printed) and not DECIMAL_POINT.search(printed.rsplit("\n", 2)[0])
    assert printed.splitlines()[-1].startswith("Bericht: ")


def test_without_lang_the_report_is_german(runs) -> None:
    assert runs["default"][1].of("h1", "h2", "h3", "th") == runs["de"][1].of("h1", "h2", "h3", "th")
    assert runs["default"][1].root["lang"] == "de"


def test_english_report_has_english_headings_and_decimal_points(runs) -> None:
    printed, page, _ = runs["en"]
    assert page.root == {"lang": "en", "dir": "ltr"}
    assert page.of("h1") == ["What if …?"]
    assert page.of("h2") == ["All services", "Comparison: mean over days [95 % confidence interval]"]
    assert "As configured: By service" in page.of("h3")
    cells = page.of("td")
    assert [c for c in cells if DECIMAL_POINT.search(c)], cells
    assert [c for c in cells if DECIMAL_COMMA.search(c)] == []
    assert "Rule set" in printed and "Report: " in printed


def test_arabic_report_is_right_to_left_in_latin_digits(runs) -> None:
    printed, page, _ = runs["ar"]
    assert page.root == {"lang": "ar", "dir": "rtl"}
    assert page.of("h1") == ["ماذا لو …؟"]
    assert page.of("h2")[0] == "كل الخدمات"
    everything = " ".join(text for _, text in page.texts) + printed
    assert not re.search("[\u0660-\u0669\u06f0-\u06f9]", everything), "Arabic-Indic digits beside Latin ones"
    assert [c for c in page.of("td") if DECIMAL_POINT.search(c)], page.of("td")


def test_json_is_the_same_bytes_in_every_language(runs) -> None:
    """The machine format has English keys and "." decimals whatever the language; only the measured speed
    of the run differs between two runs."""

    def without_speed(raw: bytes) -> bytes:
        return re.sub(rb'("(seconds|citizens_per_s|seconds_per_day)": )[0-9.e-]+', rb"\1#", raw)

    de, en, ar, default = (runs[k][2] for k in ("de", "en", "ar", "default"))
    assert without_speed(de) == without_speed(en) == without_speed(ar) == without_speed(default)
    report = json.loads(de)
    assert set(report["rule_sets"]) == {"current", "fifo"}
    assert b'"mean_wait_min": ' in de and not DECIMAL_COMMA.search(de.decode())


# Words of the English report (and of its former "German / English" headings) that a German reader must not
# meet; names from the scenario and the office (rule sets, predictors) are data, not texts of the report.
ENGLISH = re.compile(
    r"\b(what[- ]if|rule sets?|mean|overall|utili[sz]ation|abandoned|turned away|arrivals?|appointments?|"
    r"within|waits?|per (day|service)|predictors?|delayed|figure|simulated|days?|seed|citizens?|current|all|"
    r"lower is better|share|called|overtime|unserved|overtaken|priority|slot|ceiling|services?|report|"
    r"minutes?|not evaluated|CI)\b",
    re.IGNORECASE,
)


def test_no_english_text_left_in_the_german_report(runs) -> None:
    printed, page, raw = runs["de"]
    data = {*json.loads(raw)["rule_sets"], *PREDICTORS, json.loads(raw)["scenario"]}

    def english(text: str) -> list[str]:
        for name in sorted(data, key=len, reverse=True):
            text = text.replace(name, "")
        return [m.group(0) for m in ENGLISH.finditer(text)]

    found = {text: english(text) for _, text in page.texts if english(text)}
    assert found == {}
    shown = printed.splitlines()[:-1]  # the last line names the report's file
    assert {line: english(line) for line in shown if english(line)} == {}
    assert ENGLISH.search("predictor RASE (all called / delayed only)")  # the pattern finds the old texts


@pytest.mark.parametrize("lang", ["de", "en"])
def test_command_errors_speak_the_language_and_keep_exit_code_1(tmp_path, capsys, lang) -> None:
    argv = ["simulate", str(SCENARIO), "--lang", lang, "--out", str(tmp_path)]
    assert main([*argv, "--arrival-scale", "0"]) == 1
    assert main([*argv, "--rule-set", "nope"]) == 1
    err = capsys.readouterr().err
    want = {
        "de": ("Bitte einen Faktor über 0", "unbekannte Regelwerke nope (bekannt: current, fifo"),
        "en": ("give a factor above 0", "unknown rule set(s) nope (known: current, fifo"),
    }[lang]
    assert all(w in err for w in want), err
    assert not (tmp_path / "index.html").exists()


def test_every_report_text_is_translated_in_every_language() -> None:
    """The report's keys count as texts of every language (not German and English only like the staff
    pages): tests/test_i18n.py then holds every catalog to them."""
    from waitroom.sim import report

    keys = {*report.GROUPS.values(), *(k for k in report.STATS.values() if k)}
    keys |= {k for k, _, _ in report.FIGURE_ROWS if k.startswith(("sim.", "web."))}
    for key in keys | {"web.whatif.summary", "sim.report.units", "sim.cli.report"}:
        assert i18n.languages_for(key) == i18n.LANGUAGES, key
        for lang in i18n.LANGUAGES:
            assert i18n.has(key, lang), (key, lang)


def test_a_replayed_log_is_named_in_the_language_and_its_json_keeps_the_words(tmp_path) -> None:
    """A replayed anonymous-bank log: the report says "Wiedergabe des Protokolls x.tsv", the JSON keeps its
    "replay of x.tsv" (the machine format does not change with the language)."""
    from tests.forecast_helpers import write_log

    log = write_log(tmp_path / "syn.tsv", days=2, seed=4)
    out = io.StringIO()
    argv = [
        "simulate",
        str(log),
        "--no-predict",
        "--out",
        str(tmp_path / "r"),
        "--json",
        str(tmp_path / "r.json"),
    ]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(argv) == 0
    assert out.getvalue().startswith("Wiedergabe des Protokolls syn.tsv: 2 simulierte Tage je Regelwerk")
    page = Page((tmp_path / "r" / "index.html").read_text(encoding="utf-8"))
    assert [p for p in page.of("p") if p.startswith("Wiedergabe des Protokolls syn.tsv: ")]
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["scenario"] == "replay of syn.tsv"
