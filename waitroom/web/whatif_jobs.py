"""What-if comparisons as background jobs: one simulation process at a time (at nice 10: when the processors
are short, the controller and the pages on the same server get them first), progress any worker can read.

The web worker validates the request (waitroom.web.whatif), then starts ``python -m waitroom.web.whatif_jobs
<job folder>``: a process of its own, so a simulation of many days never holds a gevent worker's event loop
(the live streams and staff pages go on) and never hits a request time-out. The job folder
(``<data dir>/whatif-jobs/<id>/``) holds ``input.pickle`` (written by the web app: the office configuration,
the scenario and the rule sets), ``progress.json`` (``{"state", "done", "total", "pid"}``, replaced
atomically after every simulated day) and at the end ``result.json`` or ``error.json``. Every requested day
runs; a request over ``web.whatif_max_days`` is refused with 400 before a job starts, never cut short.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import secrets
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

JOB_ID_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789")
KEEP_S = 24 * 3600  # finished jobs are kept a day
#: The job's niceness: on the office server it shares the processors with the controller and the pages, which
#: must answer at once; a what-if may take longer (as the nightly backup, Nice=10 in its unit).
JOB_NICE = 10


class JobBusy(RuntimeError):
    """Another what-if job is running."""


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a zombie (finished, not yet reaped) is not running
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


class JobStore:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._lock = threading.Lock()

    def _dir(self, job_id: str) -> Path | None:
        if not job_id or len(job_id) > 40 or not set(job_id) <= JOB_ID_CHARS:
            return None
        d = self.folder / job_id
        return d if d.is_dir() else None

    def running(self) -> str | None:
        """The id of a job still running, if any (a job whose process died counts as failed)."""
        if not self.folder.is_dir():
            return None
        for d in self.folder.iterdir():
            p = d / "progress.json"
            try:
                prog = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if prog.get("state") in ("queued", "running") and _alive(int(prog.get("pid", 0))):
                return d.name
        return None

    def start(self, payload: dict[str, Any], total: int) -> str:
        """Write the job's input and start its process; JobBusy while another one runs."""
        with self._lock:
            if self.running():
                raise JobBusy("a what-if job is running")
            self.prune()
            job_id = secrets.token_hex(8)
            d = self.folder / job_id
            d.mkdir(parents=True)
            with (d / "input.pickle").open("wb") as fh:
                pickle.dump(payload, fh)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
            proc = subprocess.Popen(
                [sys.executable, "-m", "waitroom.web.whatif_jobs", str(d)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=(d / "job.log").open("wb"),
                env=env,
                start_new_session=True,
            )
            _write_json(d / "progress.json", {"state": "queued", "done": 0, "total": total, "pid": proc.pid})
            threading.Thread(target=proc.wait, daemon=True).start()  # reap it (no zombie)
        log.info("what-if job %s started (pid %d, %d simulated days)", job_id, proc.pid, total)
        return job_id

    def status(self, job_id: str) -> dict[str, Any] | None:
        """``{"state": queued|running|done|failed, "done", "total", "report"?, "error"?}`` or None."""
        d = self._dir(job_id)
        if d is None:
            return None
        if (d / "result.json").exists():
            prog = json.loads((d / "progress.json").read_text(encoding="utf-8"))
            report = json.loads((d / "result.json").read_text(encoding="utf-8"))
            return {"state": "done", "done": prog.get("total"), "total": prog.get("total"), "report": report}
        if (d / "error.json").exists():
            err = json.loads((d / "error.json").read_text(encoding="utf-8"))
            return {"state": "failed", "error": err.get("error", "?"), "done": 0, "total": 0}
        try:
            prog = json.loads((d / "progress.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"state": "queued", "done": 0, "total": 0}
        if not _alive(int(prog.get("pid", 0))):
            time.sleep(0.2)  # the result may just be being written
            if (d / "result.json").exists() or (d / "error.json").exists():
                return self.status(job_id)
            return {"state": "failed", "error": "the simulation process ended without a result", **prog}
        return {k: prog.get(k) for k in ("state", "done", "total")}

    def inputs(self, job_id: str) -> dict[str, Any] | None:
        d = self._dir(job_id)
        if d is None:
            return None
        with (d / "input.pickle").open("rb") as fh:
            return pickle.load(fh)

    def wait(self, job_id: str, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(job_id)
            if st is None or st["state"] in ("done", "failed") or time.monotonic() > deadline:
                return st
            time.sleep(0.1)  # a gevent sleep under the gevent worker

    def prune(self) -> None:
        if not self.folder.is_dir():
            return
        now = time.time()
        for d in self.folder.iterdir():
            try:
                if now - d.stat().st_mtime > KEEP_S:
                    shutil.rmtree(d, ignore_errors=True)
            except OSError:
                continue


def run_job(folder: Path) -> int:
    """The job process: simulate every requested day, writing progress after each."""
    from waitroom.sim import whatif

    try:
        os.nice(max(JOB_NICE - os.nice(0), 0))  # up to JOB_NICE from the web app's own; never back up
    except OSError:  # nothing else in the job depends on it
        log.warning("the what-if job could not lower its priority")
    log.info("what-if job %s at nice %d", folder.name, os.nice(0))
    with (folder / "input.pickle").open("rb") as fh:
        job = pickle.load(fh)
    progress_path = folder / "progress.json"
    pid = os.getpid()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.2 or done == total:
            last[0] = now
            _write_json(progress_path, {"state": "running", "done": done, "total": total, "pid": pid})

    _write_json(progress_path, {"state": "running", "done": 0, "total": job["total"], "pid": pid})
    try:
        report = whatif(
            job["office"],
            job["scenario"],
            job["sets"],
            job["days"],
            job["seed"],
            progress=progress,
            predict=False,
        )
    except Exception as exc:  # the job's answer is error.json, read by the page
        logging.getLogger(__name__).exception("what-if job failed")
        _write_json(folder / "error.json", {"error": f"{type(exc).__name__}: {exc}"[:600]})
        return 1
    report.update(job["extra"])
    _write_json(folder / "result.json", report)
    _write_json(progress_path, {"state": "done", "done": job["total"], "total": job["total"], "pid": pid})
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise SystemExit(run_job(Path(sys.argv[1])))
