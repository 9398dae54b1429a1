"""Charts (PNG) and an HTML report of a what-if comparison (the dict ``whatif`` returns)."""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _charts(report: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = report["rule_sets"]
    names = list(sets)
    services = list(next(iter(sets.values()))["per_service"])
    files = []
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        ps = sets[name]["per_service"]
        xs = [j + i * width for j in range(len(services) + 1)]
        ax.bar(
            xs,
            [ps[s]["mean_wait_min"] or 0 for s in services] + [sets[name]["overall"]["mean_wait_min"] or 0],
            width,
            label=f"{name} (Mittel / mean)",
        )
        ax.scatter(
            xs,
            [ps[s]["p90_wait_min"] or 0 for s in services] + [sets[name]["overall"]["p90_wait_min"] or 0],
            marker="_",
            s=200,
            color="black",
        )
    ax.set_xticks(
        [j + width * (len(names) - 1) / 2 for j in range(len(services) + 1)], [*services, "alle / all"]
    )
    ax.set_ylabel("Wartezeit / wait (min); Strich / bar: p90")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "waits.png", dpi=100)
    plt.close(fig)
    files.append("waits.png")
    fig, ax = plt.subplots(figsize=(9, 4))
    for name in names:
        hist = sets[name]["overall"]["histogram"]
        total = sum(hist) or 1
        cum, acc = [], 0
        for h in hist:
            acc += h
            cum.append(acc / total)
        ax.step([5 * (i + 1) for i in range(len(cum))], cum, where="post", label=name)
    ax.set_xlabel("Wartezeit / wait (min)")
    ax.set_ylabel("Anteil aufgerufen / share called")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "wait_distribution.png", dpi=100)
    plt.close(fig)
    files.append("wait_distribution.png")
    fig, ax = plt.subplots(figsize=(9, 4))
    preds = list(next(iter(sets.values()))["predictors"])
    for i, name in enumerate(names):
        ax.bar(
            [j + i * width for j in range(len(preds))],
            [sets[name]["predictors"][p]["rase"] or 0 for p in preds],
            width,
            label=name,
        )
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(preds))], preds)
    ax.set_ylabel("RASE (kleiner ist besser / lower is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "predictors.png", dpi=100)
    plt.close(fig)
    files.append("predictors.png")
    return files


# The comparison of rule sets: (label, path into ``figures``, format); the same rows in the terminal and HTML.
FIGURE_ROWS: list[tuple[str, tuple[str, ...], str]] = [
    *(
        (f"{g} {stat} wait (min)", (g, f"{stat}_wait_min"), "min")
        for g in ("all", "walk_in", "appointment", "priority", "normal")
        for stat in ("mean", "p95", "max")
    ),
    ("within the service target", ("within_target",), "pct"),
    ("appointments called <= 5 min after slot", ("appointments_within_5_min_of_slot",), "pct"),
    ("appointments <= 5 min after max(slot, arrival)", ("appointments_within_5_min_of_due",), "pct"),
    ("appointments arrived > 5 min after slot (ceiling)", ("appointments_arrived_over_5_min_late",), "pct"),
    (
        "normal overtaken by priority: longest wait then (min)",
        ("overtaken_max_wait_when_overtaken_min",),
        "min",
    ),
    ("normal overtaken by priority: longest total wait (min)", ("overtaken_max_wait_min",), "min"),
    ("turned away per day", ("turned_away",), "n"),
    ("abandoned per day", ("abandoned",), "n"),
    ("unserved per day (waiting at the end)", ("unserved",), "n"),
    ("utilisation", ("utilisation",), "pct"),
    ("overtime per day (min)", ("overtime_min",), "min"),
]


def figure(rs: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    v: Any = rs.get("figures")
    for k in path:
        v = v.get(k) if isinstance(v, dict) else None
    return v


def fmt_figure(v: dict[str, Any] | None, kind: str) -> str:
    """``12.3 [11.8-12.9]``: the mean over days and its 95 % confidence interval."""
    if not v or v.get("mean") is None:
        return "-"

    def one(x: float | None) -> str:
        if x is None:
            return "?"
        return f"{x:.1%}" if kind == "pct" else f"{x:.1f}"

    lo, hi = v.get("ci95") or (None, None)
    ci = f" [{one(lo)}-{one(hi)}]" if lo is not None and hi is not None else ""
    return one(v["mean"]) + ci


def comparison(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the rule-set comparison (every figure with its 95 % interval over days)."""
    sets = report["rule_sets"]
    head = ["figure (mean over days [95 % CI])", *sets]
    rows = [
        [label] + [fmt_figure(figure(s, path), kind) for s in sets.values()]
        for label, path, kind in FIGURE_ROWS
    ]
    return head, rows


def _table(rows: list[list[Any]], head: list[str]) -> str:
    def cell(v: Any) -> str:
        return "–" if v is None else html.escape(str(v))

    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows]
    return "\n".join(out) + "</table>"


def write(report: dict[str, Any], out: str | Path) -> Path:
    """Write report.json, the PNG charts and index.html into ``out``; returns the HTML file."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    images = _charts(report, folder)
    sets = report["rule_sets"]
    parts = [
        f"<h1>Was-wäre-wenn / what-if: {html.escape(report['scenario'])}</h1>",
        f"<p>{report['replications']} simulierte Tage je Regelwerk / simulated days per rule set, "
        f"Startwert / seed {report['seed']}; {report['speed']['citizens']} Bürger:innen / citizens in "
        f"{report['speed']['seconds']} s.</p>",
    ]
    head = [
        "Regelwerk / rule set",
        "Mittel / mean",
        "Median",
        "p90",
        "p95",
        "max",
        "Servicelevel",
        "Auslastung / utilisation",
        "abgebrochen / abandoned",
        "abgewiesen / turned away",
        "Termine ≤10 Min.",
    ]
    rows = []
    for name, s in sets.items():
        o = s["overall"]
        rows.append(
            [
                name,
                o["mean_wait_min"],
                o["median_wait_min"],
                o["p90_wait_min"],
                o["p95_wait_min"],
                o["max_wait_min"],
                o.get("service_level"),
                s["utilisation_overall"],
                o["abandoned"],
                o["turned_away"],
                s["appointments"]["within_10_min"],
            ]
        )
    parts += ["<h2>Gesamt / overall (Minuten / minutes)</h2>", _table(rows, head)]
    if all("figures" in s for s in sets.values()):
        chead, crows = comparison(report)
        parts += [
            "<h2>Vergleich / comparison: Mittel über Tage [95-%-Konfidenzintervall] / mean over days "
            "[95 % CI]"
            "</h2>",
            _table(crows, chead),
        ]
    for name, s in sets.items():
        rows = [
            [
                sid,
                v["arrived"],
                v["mean_wait_min"],
                v["p90_wait_min"],
                v["max_wait_min"],
                v.get("service_level"),
                v["abandoned"],
                v["turned_away"],
            ]
            for sid, v in s["per_service"].items()
        ]
        parts += [
            f"<h3>{html.escape(name)}: je Dienstleistung / per service</h3>",
            _table(
                rows,
                [
                    "Dienst / service",
                    "Ankünfte / arrivals",
                    "Mittel",
                    "p90",
                    "max",
                    "Servicelevel",
                    "abgebrochen",
                    "abgewiesen",
                ],
            ),
        ]
        rows = [
            [p, v["rase"], v["rase_delayed"], v["mean_abs_error_min"], v["n"]]
            for p, v in s["predictors"].items()
        ]
        parts += [
            f"<h3>{html.escape(name)}: Prognosefehler / predictor error</h3>",
            _table(rows, ["Prognose / predictor", "RASE", "RASE (wartende / delayed)", "MAE min", "n"]),
        ]
    parts += [f'<p><img src="{i}" alt="{i}"></p>' for i in images]
    page = (
        '<!doctype html><html lang="de"><head><meta charset="utf-8"><title>waitroom what-if</title>'
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #999;padding:.3em .6em;text-align:right}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )
    target = folder / "index.html"
    target.write_text(page, encoding="utf-8")
    log.info("what-if report written to %s", target)
    return target
