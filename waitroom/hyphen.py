"""Line breaking for the call display and the printed ticket: words at spaces, and a word longer than the line
broken with a hyphen between two syllables.

German service names are often one long compound ("Staatsangehörigkeitsangelegenheiten"): cut by characters
or with an ellipsis they cannot be read. A hyphenation dictionary would do better, but the German patterns
cost a display node about 23 MB (pyphen, measured), so the break follows the syllable rule of thumb of German,
which also serves the other European scripts of the languages offered. Right-to-left text (Arabic) is never
broken inside a word.
"""

from __future__ import annotations

import re
from collections.abc import Callable

SPACES = re.compile(r"[ \t\r\n]+")  # where a line may break: not at a no-break space or an en space

_VOWELS = frozenset("aeiouyäöüıàâéèêëîïôûAEIOUYÄÖÜİÀÂÉÈÊËÎÏÔÛаеёиоуыэюяіїєАЕЁИОУЫЭЮЯІЇЄ")
# consonants a syllable of German starts with together (and so a break goes before, not into); "pf" is
# not one of them ("Ap-fel")
_ONSETS = frozenset(
    {"ch", "ck", "sch", "ph", "th", "qu", "st", "str", "sp", "spr", "schl", "schm", "schn", "schr", "schw"}
    | {"bl", "br", "dr", "fl", "fr", "gl", "gr", "kl", "kn", "kr", "pl", "pr", "tr", "zw"}
)


NUMBER_SPACE = re.compile(r"(?<=\d) +| +(?=\d)")


def keep_numbers(text: str) -> str:
    """``text`` with each space beside a digit made a no-break space, so that a number stays with its unit and
    its "ca." on a narrow line ("ca.\u00a012\u00a0Min.", not "ca. 12" and "Min." below; DIN 5008)."""
    return NUMBER_SPACE.sub("\u00a0", text)


def rule() -> dict[str, object]:
    """The letters of the syllable rule, for the browser display's port of ``syllable_break``
    (waitroom/web/static/display/display.js), so that both break a word at the same places."""
    return {"vowels": "".join(sorted(_VOWELS)), "onsets": sorted(_ONSETS)}


def _onset(cluster: str) -> bool:
    return len(cluster) == 1 or cluster.lower() in _ONSETS


def syllable_break(word: str, i: int) -> bool:
    """Whether a hyphen may go before ``word[i]`` by the syllable rule of thumb of German: the next syllable
    takes the longest run of the consonants before its vowel that a syllable can start with
    ("Melde-angele-genheiten", "Zulassungs-stelle", "Füh-rer-schein"), two letters at least on either side.
    A rule of thumb, not a dictionary: it does not see where the words of a compound meet
    ("Staat-sangehörigkeit")."""
    if i < 2 or len(word) - i < 2 or not word[i - 2 : i + 2].isalpha() or word[i] in _VOWELS:
        return False
    j = i
    while j < len(word) and word[j].isalpha() and word[j] not in _VOWELS:
        j += 1
    if j == len(word) or not word[j].isalpha():
        return False  # no vowel follows: no syllable starts here
    return _onset(word[i:j]) and (word[i - 1] in _VOWELS or not _onset(word[i - 1 : j]))


def break_word(word: str, fits: Callable[[str], bool]) -> tuple[str, str]:
    """The longest head of ``word`` that ``fits`` with its hyphen (after a hyphen the word has, if one is far
    enough in; else between two syllables, else where the line ends) and the rest; at least one letter, so a
    break always moves on."""
    n = 1
    while n < len(word) and fits(word[: n + 1] + "-"):
        n += 1
    hyphen = word.rfind("-", 0, n)
    if hyphen >= n // 2:  # "Kfz-Zulassungsstelle": after its own hyphen, unless that is too early
        return word[: hyphen + 1], word[hyphen + 1 :]
    at = next((i for i in range(n, n // 2, -1) if syllable_break(word, i)), n)
    return word[:at] + "-", word[at:]


def wrap(
    text: str,
    fits: Callable[[str], bool],
    *,
    break_words: bool = True,
    rtl: Callable[[str], bool] | None = None,
) -> list[str]:
    """``text`` in lines that ``fits``, broken at spaces; a word that does not fit a line alone stays whole,
    or with ``break_words`` is broken (``break_word``), unless ``rtl`` says it is right-to-left text."""
    out: list[str] = []
    line = ""
    for word in SPACES.split(text.strip()):
        candidate = f"{line} {word}" if line else word
        if not line or fits(candidate):
            line = candidate
            if not break_words or fits(line):
                continue
            line = ""  # the word alone is wider than a line: broken below, from the start of a line
        else:
            out.append(line)
            line = word
            if not break_words or fits(line):
                continue
        rest = word
        while not fits(rest) and len(rest) > 1 and not (rtl is not None and rtl(rest)):
            head, rest = break_word(rest, fits)
            out.append(head)
        line = rest
    out.append(line)
    return out
