"""``waitroom predict-eval``: the walk-forward evaluation on a slice of the real log and on a synthetic log,
next to the reference classical predictors; a bad file gets one clear message."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.forecast_helpers import write_log
from waitroom.cli import main
from waitroom.forecast.evaluate import REFERENCE_CANDIDATES, evaluate_log
from waitroom.predict_eval import format_report

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = next((c for c in REFERENCE_CANDIDATES if c.is_file()), None)
FEB = REFERENCE.parent.parent / "data" / "anonymous-bank-1999-02.tsv" if REFERENCE else None
needs_reference = pytest.mark.skipif(
    REFERENCE is None, reason="../shared/eval/classical_predictors.py is not beside the repository"
)


def feb_slice(tmp_path: Path, days: tuple[str, ...]) -> Path:
    if FEB is None or not FEB.is_file():
        pytest.skip("../shared/data/anonymous-bank-1999-02.tsv is not beside the repository")
    lines = FEB.read_text(encoding="utf-8").splitlines()
    keep = [lines[0]] + [ln for ln in lines[1:] if ln.split("\t")[5] in days]
    p = tmp_path / "slice.tsv"
    p.write_text("\n".join(keep) + "\n", encoding="utf-8")
    return p


@needs_reference
@pytest.mark.slow
def test_predict_eval_on_a_slice_of_the_real_log(tmp_path, capsys):
    log = feb_slice(tmp_path, ("990208", "990209", "990210"))
    out = tmp_path / "report.json"
    assert main(["predict-eval", str(log), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "waitroom" in text and "MEAN1h/all" in text and "80-%-Intervall trifft" in text  # German: default
    r = json.loads(out.read_text())
    english = format_report(r, "en")  # the tables are translated; the JSON is the same in every language
    assert "80 % interval coverage" in english and "days predicted by the fallback" in english
    rase = f"{r['waitroom']['rase']:.3f}"
    assert rase in english and rase.replace(".", ",") in text
    assert r["population"]["n"] == r["population"]["reference_n"] > 1500
    assert set(r["classical_reference"]) == {
        "QL/all",
        "QL/type",
        "LES/all",
        "LES/type",
        "HOL/all",
        "HOL/type",
        "ZMS/all",
        "MEAN1h/all",
    }
    assert set(r["per_type"]) <= {"PS", "PE", "NW", "NE", "IN", "TT"} and "PS" in r["per_type"]
    assert [d["fallback"] for d in r["per_day"].values()] == [True, False, False]
    w = r["waitroom"]
    assert math.isfinite(w["rase"]) and 0.5 <= w["coverage_80"] <= 0.95
    assert w["below_lo"] + w["coverage_80"] + w["above_hi"] == pytest.approx(1.0)
    # day one is the fallback's: MEAN1h, except that it counts the queue when nobody was called for an hour
    assert r["per_day"]["990208"]["rase"] == pytest.approx(r["per_day"]["990208"]["rase_mean1h"], rel=0.05)
    assert r["per_day"]["990208"]["rase"] != r["per_day"]["990209"]["rase"]


@needs_reference
def test_predict_eval_on_a_synthetic_log_matches_the_reference_population(tmp_path):
    log = write_log(tmp_path / "synthetic.tsv", days=3, seed=4)
    r = evaluate_log(log, params={"max_iter": 30})
    assert r["population"]["n"] == r["population"]["reference_n"]
    # the per-type classical figures are recomputed with the reference definitions: overall they agree
    ours = r["waitroom"]["classical_rase"]
    for name, ref in r["classical_reference"].items():
        assert ours[name] == pytest.approx(ref, rel=0.03), name
    assert r["fallback_share"] == pytest.approx(r["per_day"]["990301"]["n"] / r["population"]["n"])
    assert r["training_s"]["count"] == 2
    assert set(r["per_type"]) == {"NE", "PS"}


GOOD_HEADER = (
    "vru+line\tcall_id\tcustomer_id\tpriority\ttype\tdate\tvru_entry\tvru_exit\tvru_time\tq_start\tq_exit\t"
    "q_time\toutcome\tser_start\tser_exit\tser_time\tserver"
)
GOOD_ROW = (
    "AA0101\t1\t0\t2\tPS\t990201\t8:09:16\t8:09:22\t6\t8:09:22\t8:09:27\t5"
    "\tAGENT\t8:09:27\t8:12:00\t153\tDANA"
)
HUNG_UP_ROW = GOOD_ROW.replace(
    "\tAGENT\t8:09:27\t8:12:00\t153\tDANA", "\tHANG\t0:00:00\t0:00:00\t0\tNO_SERVER"
)


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "no such file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not a text file"),
        (b"a,b,c\n1,2,3\n", "missing column(s): priority, type, date"),
        (
            (
                GOOD_HEADER + "\n" + GOOD_ROW + "\n" + GOOD_ROW.replace("8:09:22\t8:09:27", "8:x9\t8:09:27")
            ).encode(),
            "line 3: q_start '8:x9' is not a time H:MM:SS",
        ),
        ((GOOD_HEADER + "\n" + GOOD_ROW.replace("AGENT", "MAYBE")).encode(), "line 2: outcome 'MAYBE'"),
        ((GOOD_HEADER + "\n" + GOOD_ROW.replace("990201", "99-02-01")).encode(), "line 2: date '99-02-01'"),
        ((GOOD_HEADER + "\n" + GOOD_ROW.rsplit("\t", 3)[0]).encode(), "line 2: wrong number of columns"),
        ((GOOD_HEADER + "\n").encode(), "no queued calls"),
        (  # every queued caller hung up: there is no served call to score (was "the reference ... failed")
            (GOOD_HEADER + "\n" + HUNG_UP_ROW + "\n" + HUNG_UP_ROW.replace("\t1\t", "\t2\t", 1)).encode(),
            "no queued call was served (every caller hung up): nothing to learn or score",
        ),
        (  # blank lines are skipped, but the message names the line of the file
            (GOOD_HEADER + "\n\n" + GOOD_ROW + "\r\n\r\n" + GOOD_ROW.replace("AGENT", "MAYBE")).encode(),
            "line 5: outcome 'MAYBE'",
        ),
    ],
)
def test_a_bad_log_gets_one_clear_message(tmp_path, capsys, content, expected):
    p = tmp_path / "log.tsv"
    if content is not None:
        p.write_bytes(content)
    assert main(["predict-eval", str(p)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("waitroom predict-eval: ") and expected in err[0], err
    assert str(p) in err[0]


def test_the_command_exits_1_without_a_traceback(tmp_path):
    p = tmp_path / "x.tsv"
    p.write_text("just text\n")
    res = subprocess.run(
        [sys.executable, "-m", "waitroom.cli", "predict-eval", str(p)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "not an anonymous-bank log" in res.stderr and res.stdout == ""


def test_a_missing_reference_module_is_named(tmp_path, capsys):
    log = write_log(tmp_path / "synthetic.tsv", days=1)
    assert main(["predict-eval", str(log), "--reference", str(tmp_path / "nope.py")]) == 1
    err = capsys.readouterr().err
    assert "classical_predictors.py not found" in err and "--reference" in err


def test_served_calls_without_service_times_do_not_keep_the_agent_busy(tmp_path):
    from waitroom.forecast import bank
    from waitroom.forecast.events import replay
    from waitroom.forecast.features import BASE_FEATURES

    blank = GOOD_ROW.replace("8:09:27\t8:12:00\t153", "0:00:00\t0:00:00\t0")  # served, times not recorded
    later = GOOD_ROW.replace(
        "8:09:16\t8:09:22\t6\t8:09:22\t8:09:27\t5", "8:20:00\t8:20:06\t6\t8:20:06\t8:20:10\t4"
    )
    p = tmp_path / "log.tsv"
    p.write_text(f"{GOOD_HEADER}\n{blank}\n{later}\n")
    rows = list(replay(bank.load(p).events, ("PS",)))
    busy = BASE_FEATURES.index("busy")
    assert [r.features[busy] for r in rows] == [0, 0] and [r.wait for r in rows] == [5, 4]


@needs_reference
def test_an_unwritable_json_report_is_one_message(tmp_path, capsys):
    log = write_log(tmp_path / "synthetic.tsv", days=1)
    assert main(["predict-eval", str(log), "--json", str(tmp_path / "no" / "dir" / "r.json")]) == 1
    assert "cannot write" in capsys.readouterr().err
