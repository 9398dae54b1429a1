"""Screen regions of the call display for landscape (1920x1080, 1280x720, ...) and portrait TVs.

Pure geometry: ``layout(size, portrait, ticker, waits)`` returns named rectangles (x, y, w, h). The tests use
the same rectangles to check that a screenshot shows the highlighted call where it must be.
"""

from __future__ import annotations

Rect = tuple[int, int, int, int]


def layout(size: tuple[int, int], *, portrait: bool, ticker: bool, waits: bool) -> dict[str, Rect]:
    w, h = size
    m = max(4, round(min(w, h) * 0.015))  # gap between regions
    if portrait:
        header_h, ticker_h = round(h * 0.075), round(h * 0.045) if ticker else 0
        hero_h = round(h * 0.30)
        waits_h = round(h * 0.20) if waits else 0
    else:
        header_h, ticker_h = round(h * 0.11), round(h * 0.07) if ticker else 0
        hero_h = 0
        waits_h = round(h * 0.21) if waits else 0
    r: dict[str, Rect] = {"header": (0, 0, w, header_h)}
    bottom = h - ticker_h
    if ticker:
        r["ticker"] = (0, bottom, w, ticker_h)
    top = header_h + m
    if waits:
        r["waits"] = (m, bottom - m - waits_h, w - 2 * m, waits_h)
        bottom = bottom - m - waits_h
    if portrait:
        r["hero"] = (m, top, w - 2 * m, hero_h)
        r["recent"] = (m, top + hero_h + m, w - 2 * m, bottom - m - (top + hero_h + m))
    else:
        hero_w = round((w - 3 * m) * 0.58)
        r["hero"] = (m, top, hero_w, bottom - m - top)
        r["recent"] = (2 * m + hero_w, top, w - 3 * m - hero_w, bottom - m - top)
    r["offline"] = r["header"]  # the offline sign covers the header, the calls stay visible
    return r
