"""Announcements: spoken texts, real espeak-ng WAVs (through pyttsx3 and the program), the gong, and the
ordered, gap-free queue played through pygame.mixer (SDL dummy audio plays in real time into nothing)."""

from __future__ import annotations

import itertools
import math
import sys
import threading
import time
import wave
from array import array
from pathlib import Path

import pytest

from displays import make_gong
from displays import settings as ds
from displays.announce import Announcement, Announcer, AudioError, EspeakCliSynth, Pyttsx3Synth, wav_seconds
from displays.settings import GONG_WAV
from tests.conftest import require_tool
from waitroom import i18n

PHRASES = [
    ("A012", {"de": "Schalter drei", "en": "counter three"}, False),
    ("D105", {"de": "Schalter fünf", "en": "counter five"}, True),
]


def samples(path: Path) -> array:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2
        return array("h", w.readframes(w.getnframes()))


def rms(values: array) -> float:
    return math.sqrt(sum(v * v for v in values) / max(1, len(values)))


@pytest.fixture(scope="module")
def espeak() -> str:
    return require_tool("espeak-ng", "espeak-ng")


# ------------------------------------------------------------------------------------------- texts
def test_ticket_spoken_as_letter_then_number():
    assert i18n.spoken_ticket("A012", "de") == "A 12"
    assert i18n.spoken_ticket("a012", "de") == "A 12"
    assert i18n.spoken_ticket("D105", "en") == "D-105"
    assert i18n.spoken_ticket("C000", "de") == "C 0"
    assert i18n.spoken_ticket("XYZ", "de") == "XYZ"  # not a ticket form: unchanged


def test_phrase_templates_per_language():
    counter = {"de": "Schalter drei", "en": "counter three"}
    assert i18n.announcement("A012", counter, "de") == "Nummer A 12, bitte zu Schalter drei."
    assert i18n.announcement("A012", counter, "en") == "Number A-12, please go to counter three."
    assert i18n.announcement("A012", counter, "de", recall=True).startswith("Noch einmal: Nummer A 12")
    assert i18n.announcement("B007", {"de": "Schalter 1"}, "en").endswith("go to Schalter 1.")  # falls back
    assert i18n.announcement("B007", None, "de", fallback_counter="c1") == "Nummer B 7, bitte zu c1."


# ------------------------------------------------------------------------------------------- gong
def test_gong_is_generated_deterministically(tmp_path):
    out = make_gong.write(tmp_path / "gong.wav")
    assert out.read_bytes() == GONG_WAV.read_bytes()  # the committed file is the script's output
    assert 1.2 < wav_seconds(out) < 2.5
    with wave.open(str(out), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 22050)
    values = samples(out)
    assert max(abs(v) for v in values) < 32767 * 0.75  # headroom, no clipping
    assert rms(values[:2205]) > 1000  # the first note sounds at once


# ------------------------------------------------------------------------------------------- synthesis
@pytest.mark.parametrize("backend", ["pyttsx3", "espeak-ng"])
def test_tts_wav_has_plausible_length(espeak, backend, tmp_path):
    synth = Pyttsx3Synth(rate=150) if backend == "pyttsx3" else EspeakCliSynth(rate=150)
    try:
        lengths = {}
        for ticket, counter, recall in PHRASES:
            for lang in ("de", "en"):
                text = i18n.announcement(ticket, counter, lang, recall=recall)
                path = synth.synthesize(text, lang, tmp_path / f"{ticket}-{lang}.wav")
                seconds = wav_seconds(path)
                words = len(text.split())
                # 150 words per minute = 0.4 s a word; allow for pauses at commas and number words
                assert 0.2 * words < seconds < 0.9 * words + 1.0, (text, seconds)
                assert rms(samples(path)) > 300, f"{text!r} is silent"
                lengths[(ticket, lang)] = seconds
        assert lengths[("D105", "de")] > lengths[("A012", "de")]  # the recall phrase is longer
    finally:
        synth.close()


def test_tts_languages_sound_different(espeak, tmp_path):
    synth = Pyttsx3Synth(rate=150)
    try:
        de = synth.synthesize("Nummer A 12", "de", tmp_path / "de.wav").read_bytes()
        en = synth.synthesize("Nummer A 12", "en", tmp_path / "en.wav").read_bytes()
    finally:
        synth.close()
    assert de[44:] != en[44:]  # another voice, not the same samples


def test_espeak_program_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(AudioError, match="espeak-ng is not installed: apt-get install espeak-ng"):
        EspeakCliSynth()


class _LateEngine:
    """pyttsx3 2.99's espeak driver as the demo met it: the WAV is written in the end-of-message callback,
    which may come after runAndWait returned. ``delay=None``: it writes nothing at all."""

    def __init__(self, delay: float | None):
        self.delay = delay
        self.job: tuple[str, str] | None = None

    def setProperty(self, name: str, value: object) -> None:
        pass

    def save_to_file(self, text: str, filename: str) -> None:
        self.job = (text, filename)

    def runAndWait(self) -> None:
        assert self.job is not None
        path, delay = Path(self.job[1]), self.delay
        if delay is None:
            return

        def write() -> None:
            time.sleep(delay)
            with wave.open(str(path), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(22050)
                w.writeframes(b"\0\0" * 22050)

        threading.Thread(target=write, daemon=True).start()


def _fake_pyttsx3(monkeypatch, delay: float | None) -> None:
    import types

    fake = types.ModuleType("pyttsx3")
    fake.init = lambda driver=None: _LateEngine(delay)
    monkeypatch.setitem(sys.modules, "pyttsx3", fake)


def test_pyttsx3_audio_written_after_run_and_wait_is_taken(monkeypatch, tmp_path):
    """The demo's first call logged "pyttsx3 wrote no audio" and then pyttsx3's own "Audio saved"."""
    _fake_pyttsx3(monkeypatch, delay=0.2)
    synth = Pyttsx3Synth(rate=150)
    try:
        path = synth.synthesize("Nummer A 1, bitte zu Schalter eins.", "de", tmp_path / "a.wav")
        assert wav_seconds(path) == pytest.approx(1.0)
    finally:
        synth.close()


def test_pyttsx3_without_audio_is_still_an_error(monkeypatch, tmp_path):
    from displays import announce

    monkeypatch.setattr(announce, "WAV_WAIT_S", 0.1)
    _fake_pyttsx3(monkeypatch, delay=None)
    synth = Pyttsx3Synth(rate=150)
    try:
        with pytest.raises(AudioError, match="wrote no audio"):
            synth.synthesize("Nummer A 1", "de", tmp_path / "a.wav")
    finally:
        synth.close()


# ------------------------------------------------------------------------------------------- queue
def short_gong(tmp_path: Path) -> Path:
    """A 0.15 s beep instead of the 1.7 s gong: the queue tests play in real time."""
    path = tmp_path / "beep.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes(
            array("h", (round(8000 * math.sin(2 * math.pi * 880 * i / 22050)) for i in range(3300))).tobytes()
        )
    return path


def test_burst_is_announced_in_order(espeak, tmp_path):
    a = Announcer(ds.parse({"speech_rate": 260}), gong=short_gong(tmp_path))
    a.start()
    try:
        for n in (1, 2, 3):
            assert a.announce(Announcement(f"B{n:03d}", {"de": f"Schalter {n}"}, seq=n))
        assert a.pending >= 2  # queued, not played at once
        assert a.wait_idle(timeout=30)
    finally:
        a.stop()
    played = list(a.played)
    assert [(p.seq, p.kind) for p in played] == [(n, k) for n in (1, 2, 3) for k in ("gong", "speech")]
    assert [p.text for p in played if p.kind == "speech"] == [
        f"Nummer B {n}, bitte zu Schalter {n}." for n in (1, 2, 3)
    ]
    for prev, nxt in itertools.pairwise(played):
        assert nxt.start >= prev.end  # nothing is cut off or overlaps


def test_a_waiting_call_is_skipped_when_its_counter_calls_again(tmp_path):
    """Counter 1 calls A001, finds nobody and calls A002 while the display is still announcing another
    counter's call: only A002 is announced for counter 1 (A001 would send a late citizen to a counter that
    has moved on), and its recall after it as a repetition; a call already playing is never cut off."""
    a = Announcer(ds.parse({"speech": False}), gong=short_gong(tmp_path))
    a.start()
    try:
        calls = [
            ("B001", "c2", 1),
            ("A001", "c1", 2),
            ("C001", "c3", 3),
            ("A002", "c1", 4),
            ("A002", "c1", 5),
        ]
        for ticket, counter, seq in calls:
            assert a.announce(Announcement(ticket, {"de": counter}, recall=seq == 5, seq=seq, at=counter))
        assert a.wait_idle(timeout=30)
    finally:
        a.stop()
    assert [(p.ticket, p.seq) for p in a.played] == [("B001", 1), ("C001", 3), ("A002", 4), ("A002", 5)]
    assert a.skipped == 1 and a.health()["announce_skipped"] == 1


@pytest.mark.slow
def test_burst_in_two_languages_with_recall_keeps_order(espeak):
    settings = ds.parse({"second_language": "en", "speech_rate": 220})
    a = Announcer(settings)
    a.start()
    try:
        calls = [
            Announcement(f"A{n:03d}", {"de": f"Schalter {n}", "en": f"counter {n}"}, seq=n) for n in (1, 2, 3)
        ]
        calls.append(Announcement("A002", {"de": "Schalter 2", "en": "counter 2"}, recall=True, seq=4))
        for c in calls:
            assert a.announce(c)
        assert a.wait_idle(timeout=60)
    finally:
        a.stop()
    played = list(a.played)
    # gong, German, English for each call, in the order of the calls; the recall is announced again
    assert [(p.seq, p.kind, p.lang) for p in played] == [
        (seq, kind, lang)
        for seq in (1, 2, 3, 4)
        for kind, lang in (("gong", ""), ("speech", "de"), ("speech", "en"))
    ]
    assert played[-2].text.startswith("Noch einmal: Nummer A 2")
    for prev, nxt in itertools.pairwise(played):
        assert nxt.start >= prev.end  # nothing is cut off or overlaps
    for p in played:
        assert p.end - p.start >= p.seconds * 0.9  # each sound played to its end


def test_quiet_mode_and_gong_only(espeak):
    quiet = Announcer(ds.parse({"quiet": True}))
    quiet.start()
    assert not quiet.announce(Announcement("A001", {"de": "Schalter 1"}))
    quiet.stop()

    gong_only = Announcer(ds.parse({"speech": False, "volume": 0.3}))
    gong_only.start()
    try:
        gong_only.announce(Announcement("A001", {"de": "Schalter 1"}, seq=1))
        assert gong_only.wait_idle(timeout=10)
    finally:
        gong_only.stop()
    assert [p.kind for p in gong_only.played] == ["gong"]
    assert abs(gong_only.played[0].seconds - wav_seconds(GONG_WAV)) < 0.05


@pytest.mark.slow
def test_display_node_announces_a_live_call(controller, node, cfg, tmp_path):
    from displays.node import DisplayNode

    dn = DisplayNode(
        node("display-1"),
        cfg,
        cfg.node("display-1"),
        settings=ds.parse({"screenshot_every_s": 0, "speech_rate": 220}),
        data_dir=tmp_path,  # the calls it heard (displays.heard)
    )
    dn.start()
    try:
        disp, c1 = node("disp-1"), node("counter-1")
        disp.request("ticket.issue", {"service": "pass"})
        t0 = time.monotonic()
        c1.request("counter.call_next", {"counter": "c1"})
        c1.request("counter.recall", {"counter": "c1"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(dn.announcer.played) < 4:
            time.sleep(0.05)
    finally:
        dn.stop()
    played = list(dn.announcer.played)
    assert [(p.ticket, p.kind) for p in played] == [("A001", "gong"), ("A001", "speech")] * 2
    assert played[1].text == "Nummer A 1, bitte zu Schalter eins."
    assert played[3].text == "Noch einmal: Nummer A 1, bitte zu Schalter eins."
    assert played[0].start > t0


# ------------------------------------------------------------------------------------------- languages
def test_announcement_wav_per_language_has_plausible_length(espeak, tmp_path):
    """Every citizen language is spoken with its own espeak-ng voice; the WAV's length fits the words."""
    settings = ds.parse({})
    synth = EspeakCliSynth(rate=150)
    german = None
    for lang in i18n.LANGUAGES:
        text = i18n.announcement("A012", {"de": "Schalter drei", "en": "counter three"}, lang)
        path = synth.synthesize(text, settings.voice(lang), tmp_path / f"{lang}.wav")
        seconds, words = wav_seconds(path), len(text.split())
        assert 0.2 * words < seconds < 1.0 * words + 1.5, (lang, text, seconds)
        assert rms(samples(path)) > 300, f"{lang}: {text!r} is silent"
        data = path.read_bytes()[44:]
        if lang == "de":
            german = data
        elif lang != "de-LS":
            assert data != german, f"{lang} sounds like German"


def test_display_language_settings_are_validated():
    s = ds.parse({"languages": ["de", "tr"], "second_language": "en", "voices": {"ar": "ar+m3"}})
    assert s.languages == ("de", "tr") and s.voice("ar") == "ar+m3" and s.voice("uk") == "uk"
    assert s.spoken_languages("ar") == ("de", "ar", "en")
    assert s.spoken_languages("de-LS") == ("de", "en")  # Leichte Sprache is spoken as German once
    assert ds.parse({"languages": ["de-x-ls"]}).languages == ("de-LS",)
    for bad, key in (
        ({"languages": ["de", "fr"]}, "display.languages"),
        ({"second_language": "klingon"}, "display.second_language"),
        ({"voices": {"xx": "de"}}, "display.voices"),
        ({"voices": {"de": "de; rm -rf /"}}, "display.voices"),
        ({"languages": ["de", "de"]}, "display.languages"),
    ):
        with pytest.raises(ds.ConfigError) as exc:
            ds.parse(bad)
        assert key in str(exc.value), (bad, str(exc.value))


def test_ticket_language_follows_german_with_pauses(espeak, tmp_path):
    """German first, then the ticket's language; >= gong_pause_s after the gong, >= call_gap_s between
    calls."""
    settings = ds.parse({"speech_rate": 260, "languages": ["de"]})
    assert (settings.gong_pause_s, settings.call_gap_s) == (0.8, 1.5)
    a = Announcer(settings, gong=short_gong(tmp_path))
    a.start()
    try:
        a.announce(Announcement("A012", {"de": "Schalter 3"}, seq=1, lang="tr"))
        a.announce(Announcement("B004", {"de": "Schalter 4"}, seq=2, lang="ar"))
        a.announce(Announcement("C001", {"de": "Schalter 5"}, seq=3))  # no language: German only
        assert a.wait_idle(timeout=60)
    finally:
        a.stop()
    played = list(a.played)
    assert [(p.seq, p.kind, p.lang) for p in played] == [
        (1, "gong", ""),
        (1, "speech", "de"),
        (1, "speech", "tr"),
        (2, "gong", ""),
        (2, "speech", "de"),
        (2, "speech", "ar"),
        (3, "gong", ""),
        (3, "speech", "de"),
    ]
    assert played[2].text == "Numara A 12. Gideceğiniz yer: Schalter 3."
    assert played[5].text.startswith("الرقم B 4")
    for prev, nxt in itertools.pairwise(played):
        gap = nxt.start - prev.end
        if nxt.kind == "gong":
            assert gap >= 1.5 - 0.01, gap
        elif prev.kind == "gong":
            assert gap >= 0.8 - 0.01, gap
        else:
            assert gap >= 0.4 - 0.01, gap


# ------------------------------------------------------------------------------------------- broken speech
def fake_espeak(folder: Path, body: str) -> Path:
    """An ``espeak-ng`` program of our own, first on PATH."""
    folder.mkdir(exist_ok=True)
    prog = folder / "espeak-ng"
    prog.write_text(f"#!/bin/sh\n{body}\n")
    prog.chmod(0o755)
    return folder


def test_a_hanging_espeak_never_holds_back_a_gong(tmp_path, monkeypatch, caplog):
    """espeak-ng that hangs (a real process that never ends): the first call's gong plays at once, while its
    speech is still being synthesized; its speech is given up after ``synth_timeout`` of the text (a fault
    in the health: speech_timeout) and the next calls get their gong without waiting for speech (off for
    SPEECH_RETRY_S), with one log line. (The gong used to wait for the synthesis: up to 15 s per call.)"""
    import logging

    from displays import announce

    started = tmp_path / "espeak-started"
    monkeypatch.setenv("PATH", f"{fake_espeak(tmp_path / 'bin', f'touch {started}; sleep 30')}:/usr/bin:/bin")
    caplog.set_level(logging.INFO, logger="displays.announce")
    a = Announcer(ds.parse({"tts": "espeak-ng", "second_language": "en"}), gong=short_gong(tmp_path))
    fault_at_gong: list[str] = []
    a.on_played.append(lambda p: fault_at_gong.append(a.speech_fault) if p.kind == "gong" else None)
    a.start()
    try:
        for n in (1, 2, 3):
            assert a.announce(Announcement(f"B{n:03d}", {"de": f"Schalter {n}"}, seq=n, lang="tr"))
        assert a.wait_idle(timeout=60)
    finally:
        a.stop()
    assert started.exists()  # espeak-ng was really asked (and hung)
    assert [(p.ticket, p.kind) for p in a.played] == [(f"B00{n}", "gong") for n in (1, 2, 3)]
    # the first gong had played before the synthesis was given up: it did not wait for the speech
    assert fault_at_gong[0] == ""
    assert fault_at_gong[1:] == ["speech_timeout", "speech_timeout"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "gong alone" in errors[0].getMessage()
    assert a.health()["speech_fault"] == "speech_timeout"
    assert a.health()["speech"].startswith("error: ")
    limit = announce.synth_timeout("Nummer B 1, bitte zu Schalter 1.")
    assert 6.0 < limit < 10.0  # tied to the text's length (espeak-ng needs well under 0.1 s for it here)


def test_speech_failing_then_back_is_tried_again(espeak, tmp_path, monkeypatch):
    """espeak-ng exits 1 (a crash): gong only; once it works again, the first call after SPEECH_RETRY_S is
    spoken again and the health says ok."""
    from displays import announce

    monkeypatch.setattr(announce, "SPEECH_RETRY_S", 0.5)
    flag = tmp_path / "broken"
    flag.touch()
    body = f'[ -e "{flag}" ] && {{ echo crashed >&2; exit 1; }}\nexec "{espeak}" "$@"'
    monkeypatch.setenv("PATH", f"{fake_espeak(tmp_path / 'bin', body)}:/usr/bin:/bin")
    a = Announcer(ds.parse({"tts": "espeak-ng", "speech_rate": 260}), gong=short_gong(tmp_path))
    a.start()
    try:
        a.announce(Announcement("B001", {"de": "Schalter 1"}, seq=1))
        assert a.wait_idle(timeout=30)
        assert a.health()["speech"] == "error: espeak-ng failed (1): crashed"
        assert a.health()["speech_fault"] == "speech_failed"
        flag.unlink()
        time.sleep(0.6)
        a.announce(Announcement("B002", {"de": "Schalter 2"}, seq=2))
        assert a.wait_idle(timeout=30)
    finally:
        a.stop()
    assert [(p.ticket, p.kind) for p in a.played] == [("B001", "gong"), ("B002", "gong"), ("B002", "speech")]
    assert a.health()["speech"] == "ok" and a.health()["speech_fault"] is None


def test_a_voice_espeak_ng_does_not_have_costs_neither_that_language_nor_the_next_calls_speech(
    espeak, tmp_path, caplog
):
    """``display.voices`` naming a voice espeak-ng does not have (a typo: "turkce"): the program failed on
    every Turkish phrase, and each failure turned all speech off for SPEECH_RETRY_S, German too; pyttsx3 read
    the Turkish text with the voice of the phrase before it. Now the language's own voice speaks it, and one
    log line names the key."""
    import logging

    caplog.set_level(logging.ERROR, logger="displays.announce")
    settings = ds.parse({"tts": "espeak-ng", "speech_rate": 260, "voices": {"tr": "turkce"}})
    assert settings.voice("tr") == "turkce"
    a = Announcer(settings, gong=short_gong(tmp_path))
    a.start()
    try:
        a.announce(Announcement("A012", {"de": "Schalter 3"}, seq=1, lang="tr"))
        a.announce(Announcement("B004", {"de": "Schalter 4"}, seq=2, lang="tr"))
        a.announce(Announcement("C001", {"de": "Schalter 5"}, seq=3))
        assert a.wait_idle(timeout=60)
    finally:
        a.stop()
    assert [(p.seq, p.kind, p.lang) for p in a.played] == [
        (1, "gong", ""),
        (1, "speech", "de"),
        (1, "speech", "tr"),
        (2, "gong", ""),
        (2, "speech", "de"),
        (2, "speech", "tr"),
        (3, "gong", ""),
        (3, "speech", "de"),
    ]
    assert a.health()["speech"] == "ok"
    [line] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]  # once, not per call
    assert line.startswith("display.voices.tr: espeak-ng has no voice 'turkce'") and "'tr'" in line
    tr = EspeakCliSynth(260).synthesize(a.played[2].text, "tr", tmp_path / "tr.wav")
    assert abs(a.played[2].seconds - wav_seconds(tr)) < 0.05  # spoken with the Turkish voice


def test_a_language_espeak_ng_has_no_voice_for_is_left_out_and_the_rest_is_spoken(
    espeak, tmp_path, monkeypatch
):
    """An espeak-ng without a Ukrainian voice (the real program, answering as it does for a voice it does not
    have): a Ukrainian ticket's call is spoken in German, and the next calls are spoken too (the failure used
    to turn all speech off for SPEECH_RETRY_S: the next calls had the gong alone)."""
    body = (
        'case " $* " in *" -v uk "*) echo "Error: The specified espeak-ng voice does not exist." >&2; '
        f'exit 1;; esac\nexec "{espeak}" "$@"'
    )
    monkeypatch.setenv("PATH", f"{fake_espeak(tmp_path / 'bin', body)}:/usr/bin:/bin")
    a = Announcer(
        ds.parse({"tts": "espeak-ng", "speech_rate": 260, "second_language": "en"}), gong=short_gong(tmp_path)
    )
    a.start()
    try:
        a.announce(Announcement("A001", {"de": "Schalter 1", "en": "counter 1"}, seq=1, lang="uk"))
        a.announce(Announcement("A002", {"de": "Schalter 2", "en": "counter 2"}, seq=2, lang="uk"))
        a.announce(Announcement("A003", {"de": "Schalter 3", "en": "counter 3"}, seq=3))
        assert a.wait_idle(timeout=60)
    finally:
        a.stop()
    assert [(p.seq, p.kind, p.lang) for p in a.played] == [
        (n, kind, lang)
        for n in (1, 2, 3)
        for kind, lang in (("gong", ""), ("speech", "de"), ("speech", "en"))
    ]
    assert a.health()["speech"] == "ok" and a.health()["speech_fault"] is None


def test_the_sound_health_says_error_while_sounds_fail_and_ok_once_one_plays(tmp_path):
    """The health's ``audio`` was "error" for ever after one sound that did not play (or one failed speech
    synthesis), until the node restarted: the admin page, and now the clerk's alarm, said "no sound" all day.
    Now it says what the last sound did: the output closed under the player (as when the HDMI sink or the USB
    sound card goes) gives "error", the next sound that plays gives "ok" again."""
    import pygame

    a = Announcer(ds.parse({"speech": False, "volume": 0.3}), gong=short_gong(tmp_path))
    changes: list[str] = []
    a.on_health.append(lambda: changes.append(a.health()["audio"]))
    a.start()
    try:
        a.announce(Announcement("A001", {"de": "Schalter 1"}, seq=1))
        assert a.wait_idle(timeout=10)
        assert a.health()["audio"] == "ok"
        pygame.mixer.quit()  # the sound output is gone
        a.announce(Announcement("A002", {"de": "Schalter 2"}, seq=2))
        assert a.wait_idle(timeout=10)
        assert a.health()["audio"] == "error" and "mixer" in a.audio_error.lower()
        pygame.mixer.init(frequency=22050, size=-16, channels=1, buffer=512)  # and back
        a.announce(Announcement("A003", {"de": "Schalter 3"}, seq=3))
        assert a.wait_idle(timeout=10)
    finally:
        a.stop()
    assert [p.ticket for p in a.played] == ["A001", "A003"]
    assert a.health()["audio"] == "ok" and changes == ["error", "ok"]


def test_display_without_espeak_still_gongs_and_says_so_in_its_health(
    controller, node, cfg, monkeypatch, tmp_path
):
    """espeak-ng not installed (not on PATH) with ``tts: espeak-ng``: the display starts, a call gets its
    gong, and the published health says why there is no speech (it used to announce nothing at all)."""
    from displays.node import DisplayNode
    from waitroom.contract import Topics, decode

    monkeypatch.setenv("PATH", "/nonexistent")
    health: list[dict] = []
    node("web").subscribe(Topics(cfg.office.id).health("display-1"), lambda t, p: health.append(decode(p)))
    dn = DisplayNode(
        node("display-1"),
        cfg,
        cfg.node("display-1"),
        settings=ds.parse({"screenshot_every_s": 0, "tts": "espeak-ng"}),
        data_dir=tmp_path,  # the calls it heard (displays.heard)
    )
    dn.start()
    try:
        node("disp-1").request("ticket.issue", {"service": "pass"})
        node("counter-1").request("counter.call_next", {"counter": "c1"})
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not dn.announcer.played:
            time.sleep(0.05)
        while time.monotonic() < deadline and not any("not installed" in h.get("speech", "") for h in health):
            time.sleep(0.05)
    finally:
        dn.stop()
    assert [(p.ticket, p.kind) for p in dn.announcer.played] == [("A001", "gong")]
    said = [h for h in health if h.get("speech", "").startswith("error: espeak-ng is not installed")]
    assert said and said[-1]["speech_fault"] == "speech_missing"


def test_display_with_a_hanging_espeak_shows_and_gongs_the_call_and_reports_the_fault(
    controller, node, cfg, monkeypatch, tmp_path
):
    """A display whose espeak-ng hangs (a real process that never ends): the call is on the screen and its
    gong plays while the synthesis still hangs; the published health says speech_timeout."""
    from displays.node import DisplayNode
    from waitroom.contract import Topics, decode

    started = tmp_path / "espeak-started"
    monkeypatch.setenv("PATH", f"{fake_espeak(tmp_path / 'bin', f'touch {started}; sleep 30')}:/usr/bin:/bin")
    health: list[dict] = []
    node("web").subscribe(Topics(cfg.office.id).health("display-1"), lambda t, p: health.append(decode(p)))
    settings = ds.parse({"screenshot_every_s": 0, "tts": "espeak-ng"})
    dn = DisplayNode(
        node("display-1"),
        cfg,
        cfg.node("display-1"),
        settings=settings,
        announcer=Announcer(settings, gong=short_gong(tmp_path)),
        data_dir=tmp_path,
    )
    fault_at_gong: list[str] = []
    dn.announcer.on_played.append(lambda p: fault_at_gong.append(dn.announcer.speech_fault))
    dn.start()
    try:
        node("disp-1").request("ticket.issue", {"service": "pass"})
        node("counter-1").request("counter.call_next", {"counter": "c1"})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(h.get("speech_fault") for h in health):
            time.sleep(0.05)
        assert dn.announcer.wait_idle(timeout=15)
    finally:
        dn.stop()
    assert started.exists()
    assert [(p.ticket, p.kind) for p in dn.announcer.played] == [("A001", "gong")]
    assert fault_at_gong == [""]  # the gong had played before the hung synthesis was given up
    assert any(k[0] == "A001" for k in dn.shown)  # on a frame
    said = [h for h in health if h.get("speech_fault")]
    assert said[-1]["speech_fault"] == "speech_timeout" and said[-1]["speech"].startswith("error: ")
