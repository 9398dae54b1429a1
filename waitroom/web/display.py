"""The browser call display (``/display``): the Pi display's content for TVs that have a browser instead.

Public, no login: it shows ticket numbers and counters only. The page renders the current state at once and
then follows ``/api/stream`` (server-sent events ``state`` and ``call``). Sound: the gong from the repository
and the spoken call as a WAV synthesized here by espeak-ng (the same voice as on the Pi), falling back to the
browser's speechSynthesis. Browsers play sound only after a click, unless the kiosk browser is started with
``chromium --kiosk --autoplay-policy=no-user-gesture-required http://HOST:8080/display/``.

Query parameters: ``zone`` (only the counters of that zone), ``n`` (earlier calls listed, 0-12), ``sound``
(``1`` gong and speech, ``gong``, ``0`` silent), ``speak`` (spoken languages, ``de`` or ``de,en``),
``lang2`` (``0`` hides the English lines).

As on the Pi board, the large panel shows the call being announced, and a call still to be announced (or
announced less than ``keep_called_s`` ago) never leaves the list, which then grows (highlighted rows).

The offline sign is shown while the stream is down, the controller offline or the web app off the broker
(the stream's ``controller`` and ``link`` events; ``/display/status`` when the stream reconnects).
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request, send_file

from displays.look import GONG_WAV
from waitroom import hyphen, i18n
from waitroom.errors import ConfigError
from waitroom.web.security import limiter, public_limit

log = logging.getLogger(__name__)

bp = Blueprint(
    "display",
    __name__,
    url_prefix="/display",
    template_folder="templates",
    static_folder="static/display",
    static_url_path="/static",
)

TICKET_RE = re.compile(r"^[A-Z][0-9]{1,4}$")
_speech_cache: OrderedDict[tuple[str, str, str, bool], bytes] = OrderedDict()
_speech_lock = threading.Lock()
SPEECH_CACHE_SIZE = 64
SPEECH_LIMIT = "30 per minute"  # per address: espeak-ng runs per new number; a display needs a few a minute

limiter.shared_limit(public_limit, scope="public")(bp)


def _error(status: int, code: str, message: str) -> Response:
    resp = jsonify({"ok": False, "error": {"code": code, "message": message}})
    resp.status_code = status
    return resp


def _office() -> Any:
    cfg = current_app.extensions.get("waitroom_config")
    return cfg.office if cfg is not None else None


def _live() -> Any:
    return current_app.extensions.get("waitroom")


def _state() -> dict[str, Any] | None:
    live = _live()
    if live is None:
        return None
    return live.public_state() if hasattr(live, "public_state") else live.state()


def _timing() -> dict[str, Any]:
    """The office's display timing (its ``display:`` section, as on the Pi board) in milliseconds."""
    from displays.settings import DisplaySettings, for_node

    cfg = current_app.extensions.get("waitroom_config")
    try:
        s = for_node(cfg) if cfg is not None else DisplaySettings()
    except ConfigError as exc:  # check-config says so; the page goes on with the defaults
        log.warning("the browser display uses the default timing: %s", exc)
        s = DisplaySettings()
    return {
        "blink_ms": _ms(s.blink_s),
        "keep_ms": _ms(s.keep_called_s),
        "missed_ms": _ms(s.announce_missed_s),
        "pause": {"gong": _ms(s.gong_pause_s), "phrase": _ms(s.phrase_pause_s), "call": _ms(s.call_gap_s)},
    }


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _office_status() -> dict[str, bool]:
    """Whether the office the page shows is current: the controller online (its status topic) and this app on
    the broker (waitroom.web.live); without them the retained state is the office of minutes or hours ago."""
    live = _live()
    return {
        "controller": getattr(live, "controller_offline_since", None) is None,
        "link": bool(getattr(live, "online", True)),
    }


def _labels() -> dict[str, dict[str, Any]]:
    """The page's texts per key and language; it fills in the {placeholders} itself. A plural message is
    {"forms": [...], "index": [form of the count 0..199]} (i18n.plural_table): the page picks the form."""
    keys = (
        "display.now_calling",
        "display.recall",
        "display.please_go",
        "display.recent",
        "display.waits",
        "display.intake_closed",
        "display.no_calls",
        "display.offline",
        "display.sound_on",
        "announce.ticket",
        "announce.letters",
        "announce.call",
        "announce.recall",
        "wait.under_minute",
    )
    labels: dict[str, dict[str, Any]] = {k: dict(i18n.TEXTS[k]) for k in keys}
    for key in ("display.waiting_count", "wait.minutes"):
        labels[key] = {}
        for lang in i18n.LANGUAGES:
            forms, plural = i18n.forms(key, lang)
            labels[key][lang] = {"forms": list(forms), "index": i18n.plural_table(plural)}
    return labels


@bp.get("/")
def page() -> Any:
    state = _state()
    zone = request.args.get("zone") or None
    counters = (state or {}).get("counters", [])
    zones = sorted({c.get("zone") for c in counters if c.get("zone")})
    if zone is not None and counters and zone not in zones:
        return _error(400, "unknown_zone", f"zone {zone!r} has no counters (zones: {', '.join(zones)})")
    try:
        recent = int(request.args.get("n", "6"))
    except ValueError:
        recent = -1
    if not 0 <= recent <= 12:
        return _error(400, "bad_request", "n must be a whole number from 0 to 12")
    sound = request.args.get("sound", "1")
    if sound not in ("0", "1", "gong"):
        return _error(400, "bad_request", "sound must be 1 (gong and speech), gong or 0")
    speak = request.args.get("speak", "de").split(",")
    if not speak or any(lang not in i18n.LANGUAGES for lang in speak):
        return _error(
            400, "bad_request", f"speak must list languages of {', '.join(i18n.LANGUAGES)}, e.g. de,en"
        )
    langs = _screen_languages()
    if langs is None:
        return _error(
            400, "bad_request", f"langs must list one or two of {', '.join(i18n.LANGUAGES)}, e.g. de,tr"
        )
    boot = {
        "langs": langs,
        "tz": _office().timezone if _office() else "Europe/Berlin",
        "rtl": sorted(i18n.RTL_LANGUAGES),
        "state": state,
        "zone": zone,
        "recent": recent,
        "sound": sound,
        "speak": speak[:2],
        "lang2": request.args.get("lang2", "1") != "0",
        "labels": _labels(),
        "hyphen": hyphen.rule(),
        "office": _office_status(),
        **_timing(),
    }
    name = (state or {}).get("name", "") or (_office().name if _office() else "")
    return render_template(
        "display/index.html", boot=boot, office_name=name, lang=langs[0], dir=i18n.text_dir(langs[0])
    )


def _screen_languages() -> list[str] | None:
    """``?langs=de,tr`` (one or two screen languages; default de,en); ``?lang=ar`` puts Arabic first."""
    raw = request.args.get("langs")
    if raw is None:
        one = i18n.normalize(request.args.get("lang"))
        if request.args.get("lang") and one is None:
            return None
        return [one, "de"] if one and one != "de" else ["de", "en"]
    codes = [i18n.normalize(x) for x in raw.split(",")]
    if not 1 <= len(codes) <= 2 or None in codes or len(set(codes)) != len(codes):
        return None
    return [c for c in codes if c]


@bp.get("/status")
def status() -> Any:
    """``{"ok": true, "controller": bool, "link": bool}``: asked by the page when its stream (re)connects,
    since the stream says only when the controller's status or this app's broker link changes."""
    return jsonify({"ok": True, **_office_status()})


@bp.get("/gong.wav")
def gong() -> Any:
    """The announcement gong (generated by displays/make_gong.py)."""
    return send_file(GONG_WAV, mimetype="audio/wav", max_age=86400)


@bp.get("/speech.wav")
@limiter.limit(SPEECH_LIMIT, override_defaults=False)
def speech() -> Any:
    """The spoken call as WAV: ``?ticket=A012&counter=c3&lang=de&recall=0``.

    Only a ticket-number form and a configured counter are accepted, so the page cannot be made to say
    anything else; results are cached.
    """
    ticket = request.args.get("ticket", "").upper()
    counter = request.args.get("counter", "")
    lang = request.args.get("lang", "de")
    recall = request.args.get("recall", "0") == "1"
    if not TICKET_RE.match(ticket):
        return _error(400, "bad_request", "ticket must be a letter and 1-4 digits, e.g. A012")
    if lang not in i18n.LANGUAGES:
        return _error(400, "bad_request", f"lang must be one of {', '.join(i18n.LANGUAGES)}")
    state = _state() or {}
    spoken = next(
        (c.get("spoken") or c.get("name") for c in state.get("counters", []) if c.get("id") == counter), None
    )
    if spoken is None:
        return _error(404, "unknown_counter", f"no counter {counter!r} in the office state")
    key = (ticket, counter, lang, recall)
    with _speech_lock:
        data = _speech_cache.get(key)
        if data is not None:
            _speech_cache.move_to_end(key)
    if data is None:
        from displays.announce import AudioError, EspeakCliSynth

        text = i18n.announcement(ticket, spoken, lang, recall=recall, fallback_counter=counter)
        try:
            with tempfile.TemporaryDirectory(prefix="waitroom-speech-") as tmp:
                path = EspeakCliSynth(rate=150).synthesize(
                    text, i18n.ESPEAK_VOICES.get(lang, lang), Path(tmp) / "speech.wav"
                )
                data = path.read_bytes()
        except AudioError as exc:
            log.error("speech for the browser display failed: %s", exc)
            return _error(503, "no_speech", str(exc))
        with _speech_lock:
            _speech_cache[key] = data
            while len(_speech_cache) > SPEECH_CACHE_SIZE:
                _speech_cache.popitem(last=False)
    resp = Response(data, mimetype="audio/wav")
    resp.headers["Cache-Control"] = "public, max-age=3600"
    return resp
