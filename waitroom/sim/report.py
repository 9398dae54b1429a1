"""Charts (PNG) and an HTML report of a what-if comparison (the dict ``whatif`` returns), in the language of
the office's planners.

Every text comes from the gettext catalogs (``sim.*`` keys, and the what-if page's ``web.whatif.*`` keys
where the report says the same thing: one term, one translation); numbers are written as the language writes
them (Babel, CLDR), always in Latin digits: offices in Germany use them, and one page never mixes two digit
systems. The report's data (``report.json``, ``--json``) stays language-free."""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from babel import Locale
from babel.numbers import format_decimal, format_percent

from waitroom import i18n
from waitroom.i18n import N_, t, tn

log = logging.getLogger(__name__)

#: The report's languages: every language of the catalogs, German first.
LANGUAGES = i18n.LANGUAGES
DEFAULT_LANGUAGE = LANGUAGES[0]
NONE = "–"  # a figure with no value (no citizen of the group, no day)


class Numbers:
    """Numbers as ``lang`` writes them: ``Numbers("de").decimal(12.34)`` -> "12,3"; Latin digits always."""

    def __init__(self, lang: str) -> None:
        self.locale = i18n.babel_locale(i18n.normalize(lang) or DEFAULT_LANGUAGE)
        pattern = Locale.parse(self.locale).percent_formats[None].pattern
        last = pattern.rfind("0")
        self._percent_1 = pattern[: last + 1] + ".0" + pattern[last + 1 :]  # "#,##0 %" -> "#,##0.0 %"

    def decimal(self, x: float | None, digits: int = 1) -> str:
        if x is None:
            return NONE
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(x, format=pattern, locale=self.locale, numbering_system="latn")

    def integer(self, x: float | None) -> str:
        return self.decimal(x, 0)

    def percent(self, x: float | None, digits: int = 0) -> str:
        if x is None:
            return NONE
        pattern = self._percent_1 if digits else None
        return format_percent(x, format=pattern, locale=self.locale, numbering_system="latn")


#: The start of ``report["scenario"]`` of a replayed log (the JSON's words; the report shows them translated).
REPLAY = "replay of "


def scenario_label(report: dict[str, Any], lang: str) -> str:
    """The scenario's name, or "Wiedergabe des Protokolls x.tsv" for a replayed log."""
    name = str(report["scenario"])
    if "recorded" in report and name.startswith(REPLAY):
        return t("sim.report.replay", lang, log=name.removeprefix(REPLAY))
    return name


def rule_set_label(name: str, lang: str) -> str:
    """A rule set's name as the report shows it: the office's own rules are "Wie konfiguriert" (the what-if
    page's term); the scenario's rule sets keep their names."""
    return t("web.whatif.configured", lang) if name == "current" else name


def _charts(report: dict[str, Any], out: Path, lang: str, labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """The charts as PNG files in ``out``: (file name, title) each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    num = Numbers(lang)
    decimal_axis = FuncFormatter(lambda x, _pos: num.decimal(x, 0 if float(x).is_integer() else 1))
    percent_axis = FuncFormatter(lambda x, _pos: num.percent(x))
    sets = report["rule_sets"]
    names = list(sets)
    services = list(next(iter(sets.values()))["per_service"])
    files = []
    title = t("web.whatif.chart_waits", lang)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        ps = sets[name]["per_service"]
        xs = [j + i * width for j in range(len(services) + 1)]
        ax.bar(
            xs,
            [ps[s]["mean_wait_min"] or 0 for s in services] + [sets[name]["overall"]["mean_wait_min"] or 0],
            width,
            label=rule_set_label(name, lang),
        )
        ax.scatter(
            xs,
            [ps[s]["p90_wait_min"] or 0 for s in services] + [sets[name]["overall"]["p90_wait_min"] or 0],
            marker="_",
            s=200,
            color="black",
        )
    ax.set_xticks(
        [j + width * (len(names) - 1) / 2 for j in range(len(services) + 1)],
        [*(labels.get(s, s) for s in services), t("web.whatif.all_services", lang)],
    )
    ax.set_title(title)
    ax.set_ylabel(t("sim.report.wait_axis", lang))
    ax.yaxis.set_major_formatter(decimal_axis)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "waits.png", dpi=100)
    plt.close(fig)
    files.append(("waits.png", title))
    title = t("web.whatif.chart_cdf", lang)
    fig, ax = plt.subplots(figsize=(9, 4))
    for name in names:
        hist = sets[name]["overall"]["histogram"]
        total = sum(hist) or 1
        cum, acc = [], 0
        for h in hist:
            acc += h
            cum.append(acc / total)
        ax.step([5 * (i + 1) for i in range(len(cum))], cum, where="post", label=rule_set_label(name, lang))
    ax.set_title(title)
    ax.set_xlabel(t("sim.report.wait_axis", lang))
    ax.set_ylabel(t("sim.report.share_called", lang))
    ax.xaxis.set_major_formatter(decimal_axis)
    ax.yaxis.set_major_formatter(percent_axis)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "wait_distribution.png", dpi=100)
    plt.close(fig)
    files.append(("wait_distribution.png", title))
    title = t("sim.report.chart_rase", lang)
    fig, ax = plt.subplots(figsize=(9, 4))
    preds = list(next(iter(sets.values()))["predictors"])
    for i, name in enumerate(names):
        ax.bar(
            [j + i * width for j in range(len(preds))],
            [sets[name]["predictors"][p]["rase"] or 0 for p in preds],
            width,
            label=rule_set_label(name, lang),
        )
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(preds))], preds)
    ax.set_title(title)
    ax.set_ylabel("RASE")
    ax.yaxis.set_major_formatter(decimal_axis)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "predictors.png", dpi=100)
    plt.close(fig)
    files.append(("predictors.png", title))
    return files


# The groups and statistics of the waiting-time rows of the comparison.
GROUPS: dict[str, str] = {
    "all": N_("sim.group.all"),
    "walk_in": N_("sim.group.walk_in"),
    "appointment": N_("sim.group.appointment"),
    "priority": N_("sim.group.priority"),
    "normal": N_("sim.group.normal"),
}
STATS: dict[str, str | None] = {"mean": N_("web.whatif.mean"), "p95": None, "max": N_("web.whatif.max")}

# The comparison of rule sets: (label key, path into ``figures``, format); the same rows in the terminal and
# HTML. A waiting-time row's label is ``sim.fig.wait`` with its group and statistic.
FIGURE_ROWS: list[tuple[str, tuple[str, ...], str]] = [
    *((f"{g}.{stat}", (g, f"{stat}_wait_min"), "min") for g in GROUPS for stat in STATS),
    (N_("sim.fig.within_target"), ("within_target",), "pct"),
    (N_("sim.fig.appointments_within_5_min_of_slot"), ("appointments_within_5_min_of_slot",), "pct"),
    (N_("sim.fig.appointments_within_5_min_of_due"), ("appointments_within_5_min_of_due",), "pct"),
    (N_("sim.fig.appointments_arrived_over_5_min_late"), ("appointments_arrived_over_5_min_late",), "pct"),
    (N_("sim.fig.overtaken_wait_when_overtaken"), ("overtaken_max_wait_when_overtaken_min",), "min"),
    (N_("sim.fig.overtaken_wait"), ("overtaken_max_wait_min",), "min"),
    (N_("sim.fig.turned_away"), ("turned_away",), "n"),
    (N_("sim.fig.abandoned"), ("abandoned",), "n"),
    (N_("sim.fig.unserved"), ("unserved",), "n"),
    (N_("web.whatif.utilisation"), ("utilisation",), "pct"),
    (N_("sim.fig.overtime"), ("overtime_min",), "min"),
]


def row_label(key: str, lang: str) -> str:
    """The text of a row of FIGURE_ROWS in ``lang``."""
    group, _, stat = key.partition(".")
    if group in GROUPS and stat in STATS:
        name = STATS[stat]
        return t("sim.fig.wait", lang, group=t(GROUPS[group], lang), stat=t(name, lang) if name else stat)
    return t(key, lang)


def figure(rs: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    v: Any = rs.get("figures")
    for k in path:
        v = v.get(k) if isinstance(v, dict) else None
    return v


def fmt_figure(v: dict[str, Any] | None, kind: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """``12,3 [11,8–12,9]`` (de): the mean over days and its 95 % confidence interval."""
    if not v or v.get("mean") is None:
        return NONE
    num = Numbers(lang)

    def one(x: float | None) -> str:
        if x is None:
            return "?"
        return num.percent(x, 1) if kind == "pct" else num.decimal(x)

    lo, hi = v.get("ci95") or (None, None)
    ci = f" [{one(lo)}–{one(hi)}]" if lo is not None and hi is not None else ""
    return one(v["mean"]) + ci


def comparison(report: dict[str, Any], lang: str = DEFAULT_LANGUAGE) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the rule-set comparison (every figure with its 95 % interval over days)."""
    sets = report["rule_sets"]
    head = [t("sim.report.figure", lang), *(rule_set_label(n, lang) for n in sets)]
    rows = [
        [row_label(key, lang)] + [fmt_figure(figure(s, path), kind, lang) for s in sets.values()]
        for key, path, kind in FIGURE_ROWS
    ]
    return head, rows


def overall(report: dict[str, Any], lang: str = DEFAULT_LANGUAGE) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the overall table (per rule set: waits in minutes, shares, counts per day)."""
    num = Numbers(lang)
    head = [
        t("web.whatif.rule_set", lang),
        t("web.whatif.mean", lang),
        t("web.whatif.median", lang),
        "p90",
        "p95",
        t("web.whatif.max", lang),
        t("web.whatif.service_level", lang),
        t("web.whatif.utilisation", lang),
        t("web.whatif.abandoned", lang),
        t("web.whatif.turned_away", lang),
        t("sim.report.appointments_within_10_min", lang),
    ]
    rows = []
    for name, s in report["rule_sets"].items():
        o, days = s["overall"], s.get("days") or 1
        rows.append(
            [
                rule_set_label(name, lang),
                num.decimal(o["mean_wait_min"]),
                num.decimal(o["median_wait_min"]),
                num.decimal(o["p90_wait_min"]),
                num.decimal(o["p95_wait_min"]),
                num.decimal(o["max_wait_min"]),
                num.percent(o.get("service_level")),
                num.percent(s["utilisation_overall"]),
                num.decimal(o["abandoned"] / days),
                num.decimal(o["turned_away"] / days),
                num.percent(s["appointments"]["within_10_min"]),
            ]
        )
    return head, rows


def per_service(
    rs: dict[str, Any], lang: str = DEFAULT_LANGUAGE, labels: Mapping[str, str] | None = None
) -> tuple[list[str], list[list[str]]]:
    labels = labels or {}
    num = Numbers(lang)
    days = rs.get("days") or 1
    head = [
        t("web.service", lang),
        t("web.whatif.arrived", lang),
        t("web.whatif.mean", lang),
        "p90",
        t("web.whatif.max", lang),
        t("web.whatif.service_level", lang),
        t("web.whatif.abandoned", lang),
        t("web.whatif.turned_away", lang),
    ]
    rows = [
        [
            labels.get(sid, sid),
            num.decimal(v["arrived"] / days),
            num.decimal(v["mean_wait_min"]),
            num.decimal(v["p90_wait_min"]),
            num.decimal(v["max_wait_min"]),
            num.percent(v.get("service_level")),
            num.decimal(v["abandoned"] / days),
            num.decimal(v["turned_away"] / days),
        ]
        for sid, v in rs["per_service"].items()
    ]
    return head, rows


def predictors(rs: dict[str, Any], lang: str = DEFAULT_LANGUAGE) -> tuple[list[str], list[list[str]]]:
    num = Numbers(lang)
    head = [
        t("sim.report.predictor", lang),
        "RASE",
        t("sim.report.rase_delayed", lang),
        t("sim.report.mean_abs_error", lang),
        t("sim.report.count", lang),
    ]
    rows = [
        [
            p,
            num.decimal(v["rase"], 3),
            num.decimal(v["rase_delayed"], 3),
            num.decimal(v["mean_abs_error_min"]),
            num.integer(v["n"]),
        ]
        for p, v in rs["predictors"].items()
    ]
    return head, rows


def summary(report: dict[str, Any], lang: str = DEFAULT_LANGUAGE) -> str:
    """ "mitte-monday: 2 simulierte Tage je Regelwerk (Startwert 1), 1.234 Bürger:innen in 3,2 s." """
    num, days = Numbers(lang), int(report["replications"])
    return tn(
        "web.whatif.summary",
        days,
        lang,
        scenario=scenario_label(report, lang),
        days=num.integer(days),
        seed=report["seed"],
        citizens=num.integer(report["speed"]["citizens"]),
        seconds=num.decimal(report["speed"]["seconds"]),
    )


def _table(head: list[str], rows: list[list[str]]) -> str:
    out = ["<table><tr>" + "".join(f'<th scope="col">{html.escape(h)}</th>' for h in head) + "</tr>"]
    out += [
        "<tr>"
        + "".join(
            f'<th scope="row">{html.escape(v)}</th>' if i == 0 else f"<td>{html.escape(v)}</td>"
            for i, v in enumerate(r)
        )
        + "</tr>"
        for r in rows
    ]
    return "\n".join(out) + "</table>"


def write(
    report: dict[str, Any],
    out: str | Path,
    lang: str = DEFAULT_LANGUAGE,
    labels: Mapping[str, str] | None = None,
) -> Path:
    """Write report.json, the PNG charts and index.html (in ``lang``) into ``out``; returns the HTML file.
    ``labels``: the services' names in ``lang`` by id (the ids where none is given)."""
    labels = labels or {}
    lang = i18n.normalize(lang) or DEFAULT_LANGUAGE
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    images = _charts(report, folder, lang, labels)
    sets = report["rule_sets"]
    e = html.escape

    def tag(name: str, text: str) -> str:
        return f"<{name}>{e(text)}</{name}>"

    parts = [
        tag("h1", t("web.whatif.title", lang)),
        tag("p", t("web.whatif.intro", lang)),
        tag("p", summary(report, lang)),
        tag("h2", t("web.whatif.all_services", lang)),
        _table(*overall(report, lang)),
        tag("p", t("sim.report.units", lang)),
    ]
    if all("figures" in s for s in sets.values()):
        parts += [tag("h2", t("sim.report.comparison", lang)), _table(*comparison(report, lang))]
    for name, s in sets.items():
        label = rule_set_label(name, lang)
        section = t("sim.report.section", lang, rule_set=label, section=t("web.whatif.per_service", lang))
        parts += [tag("h3", section), _table(*per_service(s, lang, labels))]
        section = t("sim.report.section", lang, rule_set=label, section=t("sim.report.predictors", lang))
        parts += [tag("h3", section), _table(*predictors(s, lang))]
    parts.append(tag("p", t("sim.report.rase_note", lang)))
    parts += [
        f'<figure><img src="{e(name)}" alt="{e(title)}"><figcaption>{e(title)}</figcaption></figure>'
        for name, title in images
    ]
    parts.append(tag("p", t("web.whatif.method", lang)))
    title = t("web.whatif.title", lang)
    page = (
        f'<!doctype html><html lang="{lang}" dir="{i18n.text_dir(lang)}"><head><meta charset="utf-8">'
        f"<title>{e(title)} {e(scenario_label(report, lang))}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #999;padding:.3em .6em;text-align:end}th[scope=row]{text-align:start}"
        "img{max-width:100%}</style></head><body>" + "\n".join(parts) + "</body></html>"
    )
    target = folder / "index.html"
    target.write_text(page, encoding="utf-8")
    log.info("what-if report written to %s", target)
    return target
