"""Layouts that cannot break: the longest real service and counter names of German offices on the pygame board
at 1080p, 720p and portrait, in several language pairs (Arabic right to left). Every label stays inside its
box and at least 3 % of the screen's short side, wraps to two lines before it ends with an ellipsis, and one
long name never shrinks the others. Screenshots in Arabic and Turkish go to test-artifacts/."""

from __future__ import annotations

import itertools

import pygame
import pytest

from displays import settings as ds
from displays.board import Board
from displays.render import LINE, Renderer

pygame.font.init()

# Real service and counter names (Bürgerämter, Ausländerbehörden, Kfz-Zulassung), the longer the better.
LONG_SERVICES = [
    "Beglaubigungen, Führungszeugnisse & Gebührenerstattung für Fahrerlaubnisangelegenheiten",
    "Anmeldung, Ummeldung und Abmeldung einer Wohnung (Meldebescheinigung)",
    "Aufenthaltstitel – Verlängerung, Niederlassungserlaubnis, Blaue Karte EU",
]
LONG_COUNTERS = [
    "Raum 2.14 (Bürgerservice Außenstelle Süd)",
    "Schalter 12 – Kfz-Zulassungsstelle, Erdgeschoss",
]


def snapshot(long: bool = True, call_lang: str | None = "ar") -> dict:
    names = LONG_SERVICES if long else ["Meldewesen", "Führerschein", "Aufenthalt"]
    services = [
        {"id": f"s{i}", "prefix": p, "name": {"de": n}, "waiting": 3 + i, "eta_min": 9 + 3 * i}
        for i, (p, n) in enumerate(zip("ABC", names, strict=True))
    ]
    services += [
        {
            "id": "pass",
            "prefix": "D",
            "name": {"de": "Reisepass", "en": "Passport"},
            "waiting": 1,
            "eta_min": 15,
        },
        {
            "id": "id",
            "prefix": "E",
            "name": {"de": "Personalausweis"},
            "waiting": 0,
            "eta_min": None,
            "intake_open": False,
        },
    ]
    counters = [
        {
            "id": "c1",
            "name": {"de": LONG_COUNTERS[0], "tr": "Oda 2.14 (Güney Şubesi)", "ar": "الغرفة 2.14"},
            "zone": "main",
            "services": ["s0"],
        },
        {
            "id": "c2",
            "name": {"de": LONG_COUNTERS[1], "en": "Counter 12 – vehicle registration"},
            "zone": "main",
            "services": ["s1"],
        },
        {"id": "c3", "name": {"de": "Schalter 3"}, "zone": "main", "services": ["pass"]},
    ]
    calls = [
        {"ticket": f"A{n:03d}", "counter": ("c1", "c2", "c3")[(n - 1) % 3], "ts": 100.0 - n}
        for n in range(1, 7)
    ]
    calls[0]["lang"] = call_lang
    return {
        "name": "Bürgeramt Charlottenburg-Wilmersdorf, Außenstelle Hohenzollerndamm",
        "day": "2026-01-05",
        "seq": 9,
        "counters": counters,
        "services": services,
        "calls": calls,
    }


def render(res: tuple[int, int], langs: tuple[str, ...], snap: dict) -> Renderer:
    r = Renderer(ds.parse({"resolution": list(res), "languages": list(langs)}))
    board = Board()
    board.set_link(True)
    board.apply_state(snap)
    r.draw(board.screen(), highlight=True, now=1767600000.0, mono=0)
    return r


def inside(box, rect, slack: int = 1) -> bool:
    bx, by, bw, bh = box
    x, y, w, h = rect
    return bx >= x - slack and by >= y - slack and bx + bw <= x + w + slack and by + bh <= y + h + slack


def overlap(a, b) -> bool:
    return pygame.Rect(a).inflate(-2, -2).colliderect(pygame.Rect(b).inflate(-2, -2))


LAYOUTS = {"1080p": (1920, 1080), "720p": (1280, 720), "portrait": (1080, 1920)}


@pytest.mark.parametrize("langs", [("de", "en"), ("de", "tr"), ("ar", "de"), ("de",)])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_long_names_wrap_then_ellipsis_never_tiny_never_outside(layout, langs):
    res = LAYOUTS[layout]
    r = render(res, langs, snapshot())
    assert r.min_pt >= 0.03 * min(res)
    screen = (0, 0, *res)
    assert r.drawn, "labels were drawn"
    for d in r.drawn:
        assert inside(d.rect, screen), d
        assert inside(d.box, d.rect), d  # the ink stays in its box
        assert len(d.lines) <= 2, d
        assert d.pt >= r.min_pt, d  # never below 3 % of the screen
        if d.ellipsis:
            assert d.lines[-1].endswith("…") and d.pt == r.min_pt, d  # cut only at the minimum size
    for a, b in itertools.combinations(r.drawn, 2):
        assert not overlap(a.box, b.box), (a.text, b.text)
    texts = {d.text: d for d in r.drawn}
    for name in LONG_SERVICES:  # long names are cut visibly, never squeezed to a few pixels
        d = next(v for k, v in texts.items() if name in k)
        assert d.ellipsis or len(d.lines) == 2 or d.lines == (d.text,), d
        assert d.lines[0].split()[1] == name.split()[0], d  # starts with the name's first word
    # the waits columns never touch: the strip between two columns is bare panel
    if "waits" in r.rects:
        boxes = [d for d in r.drawn if d.text[1:2] == "\u2002"]
        for a, b in itertools.combinations(boxes, 2):
            if abs(a.rect[1] - b.rect[1]) < 5:
                assert a.box[0] + a.box[2] < b.box[0] or b.box[0] + b.box[2] < a.box[0]


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_one_long_name_does_not_shrink_the_others(layout):
    res = LAYOUTS[layout]
    short = {d.text: d.pt for d in render(res, ("de", "en"), snapshot(long=False)).drawn}
    mixed = {d.text: d.pt for d in render(res, ("de", "en"), snapshot(long=True)).drawn}
    for label in ("D\u2002Reisepass", "E\u2002Personalausweis"):
        assert mixed[label] == short[label], (label, mixed[label], short[label])
    # the second language is never larger than the first (the idle screen too)
    idle = render(res, ("de", "en"), {**snapshot(), "calls": []})
    by_text = {d.text: d.pt for d in idle.drawn}
    assert (
        by_text["Please wait until your number is called."]
        <= by_text["Bitte warten Sie, bis Ihre Nummer aufgerufen wird."]
    )


def test_call_in_the_citizens_language_and_artifacts(artifacts):
    """The newest call also shows 'please go to' in the ticket's language; Arabic and Turkish screenshots."""
    r = render((1920, 1080), ("de", "en"), snapshot(call_lang="ar"))
    hero = [d for d in r.drawn if inside(d.rect, r.rects["hero"])]
    own = [d for d in hero if d.text.startswith("يرجى التوجه إلى")]
    assert own and "الغرفة 2.14" in own[0].text
    assert all(d.pt >= r.min_pt for d in own)

    ar = render((1920, 1080), ("ar", "de"), snapshot(call_lang="ar"))
    pygame.image.save(ar.frame, str(artifacts / "display-ar.png"))
    assert any(d.text == "آخر النداءات" for d in ar.drawn)
    tr = render((1920, 1080), ("de", "tr"), snapshot(call_lang="tr"))
    pygame.image.save(tr.frame, str(artifacts / "display-tr.png"))
    assert any(d.text == "Son çağrılar" for d in tr.drawn)
    assert any(d.text.startswith("Oda 2.14") for d in tr.drawn)  # the counter's Turkish name below
    # an Arabic label is right-aligned in a left-aligned box (its text starts on the right)
    ar_label = next(d for d in ar.drawn if d.text == "آخر النداءات")
    assert ar_label.box[0] + ar_label.box[2] >= ar_label.rect[0] + ar_label.rect[2] - 2


def test_arabic_on_the_board_is_shaped():
    """The board draws Arabic through the same shaping as the tickets: joined forms, right to left."""
    from PIL import Image, ImageChops, ImageDraw, ImageFont

    r = Renderer(ds.parse({}))
    surf = r.text("رقم", False, 40, (255, 255, 255))
    got = Image.frombytes("RGBA", surf.get_size(), pygame.image.tobytes(surf, "RGBA")).getchannel("A")
    basic = ImageFont.truetype(str(r._font_files[False]), 40, layout_engine=ImageFont.Layout.BASIC)
    ref = Image.new("L", got.size, 0)
    ImageDraw.Draw(ref).text(
        (0, r.font(False, 40).get_ascent()), "\ufee2\ufed7\ufead", font=basic, fill=255, anchor="ls"
    )
    unshaped = Image.new("L", got.size, 0)
    ImageDraw.Draw(unshaped).text(
        (0, r.font(False, 40).get_ascent()), "رقم", font=basic, fill=255, anchor="ls"
    )

    def diff(a, b) -> int:
        return sum(
            1 for v in ImageChops.difference(a, b).point(lambda x: 255 if x > 96 else 0).tobytes() if v
        )

    ink = sum(1 for v in got.point(lambda x: 255 if x > 96 else 0).tobytes() if v)
    assert ink > 200
    assert diff(got, ref) < ink * 0.05
    assert diff(got, unshaped) > ink * 0.3


COMPOUNDS = ["Personalausweis / Reisepass", "Meldeangelegenheiten", "Führerschein", "Sonstiges", "Gewerbeamt"]


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_a_service_letter_stays_with_its_name_and_a_long_compound_is_hyphenated_not_cut(layout):
    """German service names are often one long compound. The letter is never alone on a line, and a name
    that fits in two lines at the minimum size is shown whole, broken with a hyphen between syllables."""
    snap = {
        **snapshot(),
        "calls": [],
        "services": [
            {"id": f"s{i}", "prefix": p, "name": {"de": n}, "waiting": 2, "eta_min": 10}
            for i, (p, n) in enumerate(zip("ABCDE", COMPOUNDS, strict=True))
        ],
    }
    r = render(LAYOUTS[layout], ("de", "en"), snap)
    labels = {d.text[2:]: d for d in r.drawn if d.text[1:2] == "\u2002"}
    assert set(labels) == set(COMPOUNDS)
    for d in labels.values():
        assert d.lines[0] != d.text[0], d  # "B" is never alone on its line
        if d.rect[3] >= 2 * r.min_pt * LINE:  # room for two lines (a portrait TV's rows may have one)
            assert not d.ellipsis, d
        if d.ellipsis:
            continue
        if d.lines[0].endswith("-"):  # a word broken, at the minimum size only, before a consonant
            assert d.pt == r.min_pt and d.lines[1][0] not in "aeiouäöü", d
            assert d.lines[0][:-1] + d.lines[1] == d.text, d
        else:
            assert " ".join(d.lines) == d.text, d


def test_break_words_only_where_a_line_is_too_short_and_never_in_arabic():
    r = Renderer(ds.parse({}))
    narrow = r.width("Meldeangele-", True, 40) + 2
    assert r._wrap("B\u2002Meldeangelegenheiten", True, 40, narrow) == ["B\u2002Meldeangelegenheiten"]
    lines = r._wrap("Meldeangelegenheiten", True, 40, narrow, break_words=True)
    assert lines == ["Meldeangele-", "genheiten"]
    assert all(r.width(line, True, 40) <= narrow for line in lines)
    own = r._wrap("Zulassungs-Außenstelle", True, 40, r.width("Zulassungs-Außen", True, 40), break_words=True)
    assert own == ["Zulassungs-", "Außenstelle"]  # after the word's own hyphen
    arabic = "الأحوالالمدنيةوالجوازات"
    assert r._wrap(arabic, True, 40, 50, break_words=True) == [arabic]  # shaped scripts stay whole
