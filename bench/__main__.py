"""Run every benchmark: ``python -m bench`` (``make bench``); ``python -m bench sim`` runs bench_sim.py only.
``python -m bench soak [--days N --faults N --seed N --json]`` runs the fault soak (bench/soak.py), which is
not part of the full run.

Each ``bench/bench_*.py`` is a script that prints its figures; they run one after another so they do not
compete for the CPU.
"""

from __future__ import annotations

import ast
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip() + "\n\nThe benchmarks:")
        for script in sorted(HERE.glob("bench_*.py")):
            doc = (ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or "").strip()
            print(f"  {script.stem.removeprefix('bench_'):14} {doc.splitlines()[0] if doc else ''}")
        return 0
    if argv[:1] == ["soak"]:
        from bench import soak

        return soak.main(argv[1:])
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(a in s.stem for a in argv)]
        if not scripts:
            print(f"no benchmark matches {' '.join(argv)} (python -m bench --help)", file=sys.stderr)
            return 2
    print(
        f"# waitroom benchmarks on {platform.machine()}, {platform.processor() or '?'}, "
        f"Python {platform.python_version()}",
        flush=True,
    )
    failed = 0
    for script in scripts:
        print(f"\n## {script.stem}", flush=True)
        failed += subprocess.call([sys.executable, str(script)]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
