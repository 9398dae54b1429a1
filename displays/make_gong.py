"""Generate the announcement gong: ``python -m displays.make_gong [OUT.wav]``.

A two-tone "ding-dong" chime (E5 then C5, 659 and 523 Hz) with a few bell-like partials and exponential
decay, 22.05 kHz mono 16-bit, about 1.7 s. It is synthesized here from first principles, so the repository
holds no third-party sound and ``displays/assets/gong.wav`` is covered by the project's own licence.
The output is deterministic: running the script again gives the same bytes.
"""

from __future__ import annotations

import argparse
import logging
import math
import struct
import wave
from pathlib import Path

log = logging.getLogger(__name__)

RATE = 22050
OUT = Path(__file__).with_name("assets") / "gong.wav"
# (start s, fundamental Hz, length s)
NOTES = ((0.0, 659.25, 1.1), (0.55, 523.25, 1.15))
# (partial ratio, relative amplitude, decay factor): a soft bell-like timbre
PARTIALS = ((1.0, 1.0, 1.0), (2.0, 0.35, 1.6), (3.0, 0.12, 2.4), (4.2, 0.05, 3.2))


def samples(peak: float = 0.7) -> list[float]:
    total = max(s + n for s, _, n in NOTES)
    out = [0.0] * int(total * RATE)
    for start, freq, length in NOTES:
        first = int(start * RATE)
        for i in range(int(length * RATE)):
            t = i / RATE
            attack = min(1.0, t / 0.008)  # 8 ms attack: no click
            v = 0.0
            for ratio, amp, decay in PARTIALS:
                v += amp * math.exp(-t * 3.2 * decay) * math.sin(2 * math.pi * freq * ratio * t)
            fade = min(1.0, (length - t) / 0.05)  # 50 ms fade-out at the note's end
            out[first + i] += v * attack * fade
    top = max(abs(v) for v in out) or 1.0
    return [v / top * peak for v in out]


def write(path: Path = OUT) -> Path:
    data = samples()
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(struct.pack("<h", round(v * 32767)) for v in data))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", type=Path, default=OUT)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log.info("wrote %s", write(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
