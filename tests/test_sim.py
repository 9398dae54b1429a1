"""The what-if simulator: cross-checked against Erlang C and Ciw, the classical RASE results, the real bank
log, the what-if report and the command."""

from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path

import pytest

from waitroom import config
from waitroom.cli import main
from waitroom.errors import ConfigError
from waitroom.sim import run_days, whatif
from waitroom.sim.evaluate import summarize
from waitroom.sim.reference import ciw_waits, erlang_c, mmc_office, mmc_plans

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "waitroom" / "examples" / "scenarios" / "mitte-monday.yaml"
BANK = Path(__file__).resolve().parents[2] / "shared" / "data" / "anonymous-bank-1999-02.tsv"


def bank_log() -> Path:
    if not BANK.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"real data missing: {BANK} (CI checks out ../shared beside the clone)")
        pytest.skip(f"real data missing: {BANK}")
    return BANK


def test_mmc_mean_wait_matches_erlang_c_and_ciw():
    servers, mean, lam = 3, 5.0, 0.48  # rho = 0.8
    cfg = mmc_office(servers, mean)
    days = run_days(cfg, mmc_plans(cfg, lam, mean, hours=24, days=12, seed=3), predict=False)
    s = summarize(days, cfg, warmup_s=2 * 3600)
    lo, hi = s["overall"]["mean_wait_ci95_min"]
    _, erlang = erlang_c(servers, lam, 1 / mean)
    assert lo <= erlang <= hi, (lo, erlang, hi)
    ours = s["overall"]["mean_wait_min"]
    # Ciw, the same queue, 12 independent 24-hour runs with the same warm-up
    ciw_means = [
        statistics.fmean(ciw_waits(servers, lam, mean, 24, seed=100 + i, warmup_h=2)) for i in range(12)
    ]
    half = 1.96 * statistics.stdev(ciw_means) / math.sqrt(len(ciw_means))
    assert abs(ours - statistics.fmean(ciw_means)) <= half + (hi - lo) / 2, (ours, ciw_means)


@pytest.mark.slow
def test_rase_reproduces_the_mms_theory():
    """QL is exact on M/M/s FCFS: RASE = sqrt(1 - rho) = 0.224 at rho = 0.95; LES and HOL about 1.4x."""
    servers, mean, rho = 10, 5.0, 0.95
    cfg = mmc_office(servers, mean)
    days = run_days(cfg, mmc_plans(cfg, rho * servers / mean, mean, hours=24, days=20, seed=7))
    p = summarize(days, cfg, warmup_s=3 * 3600)["predictors"]
    theory = math.sqrt(1 - rho)
    assert abs(p["QL"]["rase_delayed"] - theory) / theory < 0.15, p["QL"]
    assert p["waitroom"]["rase_delayed"] <= p["QL"]["rase_delayed"] * 1.02  # the real predictor is QL here
    for name in ("LES", "HOL"):
        assert 1.25 <= p[name]["rase_delayed"] / p["QL"]["rase_delayed"] <= 1.6, (name, p)


@pytest.mark.slow
def test_bank_log_replay_and_predictors(artifacts):
    from waitroom.sim.replay import bank_days

    cfg, plans, figures = bank_days(bank_log())
    assert figures["rows"] == 33344 and figures["days"] == 28
    days = run_days(cfg, plans)
    s = summarize(days, cfg)
    assert s["overall"]["arrived"] == sum(len(p.arrivals) for p in plans) > 30000
    assert 0.05 < s["overall"]["abandoned"] / s["overall"]["arrived"] < 0.15
    p = s["predictors"]
    (artifacts / "bank-replay-rase.json").write_text(json.dumps(p, indent=1))
    assert p["waitroom"]["rase_delayed"] < min(p["LES"]["rase_delayed"], p["HOL"]["rase_delayed"])


def test_whatif_compares_rule_sets_on_the_same_days():
    cfg = config.load(config.EXAMPLE_CONFIG)
    report = whatif(
        cfg,
        SCENARIO,
        {
            "current": None,
            "c4-melde": {"skills": {"c4": ["fuehrerschein", "pass", "melde"]}},
            "strict-priority": {"priority": {"normal_per_priority": 0}},
        },
        replications=2,
        seed=5,
    )
    json.dumps(report)  # JSON-able for the web page
    cur, other = report["rule_sets"]["current"], report["rule_sets"]["c4-melde"]
    assert cur["overall"]["arrived"] == other["overall"]["arrived"] > 300  # the same drawn citizens
    assert cur["overall"]["mean_wait_min"] != other["overall"]["mean_wait_min"]
    assert set(cur["predictors"]) == {"waitroom", "QL", "LES", "HOL", "ZMS"}
    assert 0 < cur["utilisation_overall"] <= 1 and cur["appointments"]["arrived"] > 0
    assert report["rule_sets"]["strict-priority"]["decisions"].get("fairness", 0) == 0
    assert cur["decisions"]["longest"] > 0
    with pytest.raises(ConfigError, match=r"steering\.weights\.c1\.fuehrerschein"):
        whatif(cfg, SCENARIO, {"bad": {"weights": {"c1": {"fuehrerschein": 1}}}}, replications=1)


def test_simulate_command_writes_the_report(tmp_path, capsys):
    assert main(["simulate", str(SCENARIO), "-r", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "current" in out and "c4-also-melde" in out and "RASE" in out
    for name in ("index.html", "report.json", "waits.png", "wait_distribution.png", "predictors.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert (tmp_path / "waits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\narrivals: {boot: {'08': 3}}\n")
    assert main(["simulate", str(bad), "--out", str(tmp_path / "x")]) == 1
    assert "arrivals.boot: unknown service 'boot'" in capsys.readouterr().err
