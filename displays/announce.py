"""Announcements: a gong, then the spoken call, synthesized offline with espeak-ng and played by pygame.

Two worker threads, so the screen never waits for sound, the gong never waits for speech and a burst of calls
plays without gaps: each queued call goes to both; the *synthesis* worker turns it into WAV files while the
*player* worker plays the calls before it, and then its gong at once; after the gong and ``gong_pause_s`` the
player takes the speech if it is ready by then or within ``synth_timeout`` of its text (espeak-ng needs 10-40
ms for a call sentence on a PC, a few tenths of a second on a Pi 4). Both keep the order in which calls
arrived; nothing is ever cut off. A call still waiting to
be played when the same counter calls another ticket is skipped (a no-show's number after the counter has
moved on would send a citizen to a counter that calls somebody else); the screen still lists it. A recall of
the same ticket is announced after its call, as a repetition.

Speech synthesis (``Synthesizer``):

- ``Pyttsx3Synth``: pyttsx3's espeak driver (libespeak-ng through ctypes) with ``engine.save_to_file``.
  pyttsx3 keeps one engine per process and its ``runAndWait`` loop misbehaves when called from several
  threads, so one dedicated thread owns the engine and everything else hands it jobs through a queue.
  pyttsx3's own playback shells out to ``aplay`` and blocks; we only let it write WAV files.
- ``EspeakCliSynth``: the ``espeak-ng -w FILE`` program, one subprocess per phrase.
- ``AutoSynth`` (default): pyttsx3, and the program from the first failure or hang on (a stuck pyttsx3 loop
  cannot be cancelled; its thread is abandoned and logged).

A synthesis failure (no synthesizer at start, an error, a timeout) never silences or delays the gong: that
call and the calls of the next ``SPEECH_RETRY_S`` are announced with the gong alone, without waiting for
speech, then speech is tried again; ``health()["speech"]`` says why (fault ``speech_timeout`` for a synthesis
that hung) and ``on_health`` callbacks hear of each change. ``on_start`` callbacks hear of a call just before
its gong, ``on_done`` ones when its announcement is over (or skipped): the display keeps the board in step.

Playback goes through an ``AudioSink`` (hardware is passed in): ``PygameSink`` plays through pygame.mixer;
with ``SDL_AUDIODRIVER=dummy`` it plays in real time into nothing, which the tests and the demo use.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import wave
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from displays.look import GONG_WAV
from waitroom import i18n
from waitroom.contract import FaultCode
from waitroom.errors import HardwareError

if TYPE_CHECKING:  # the schema (pydantic); a display node runs on a light record of it (displays.look)
    from displays.settings import DisplaySettings

log = logging.getLogger(__name__)

# How long the synthesis of one phrase may take: espeak-ng needs 10-40 ms for a call sentence of about 55
# characters on a PC (measured with the program and with pyttsx3) and a few tenths of a second on a Pi 4. The
# gong never waits for it, so the limit can be generous: 6 s and 50 ms a character (8.8 s for such a
# sentence). A shorter one (2 s + 20 ms) was passed on a 2-core machine at a load of 8 by pyttsx3 saying
# "Nummer A 12", and a slow moment would cost the next 5 minutes their speech (``SPEECH_RETRY_S``); a hung
# espeak-ng costs that one call's speech, and the calls queued behind it wait at most this long.
SYNTH_BASE_S = 6.0
SYNTH_PER_CHAR_S = 0.05
ENGINE_START_S = 15.0  # pyttsx3 loading libespeak-ng and its voices (once, at start)
# After a speech synthesis failure (the program missing, crashing or hanging) calls are announced with the
# gong alone for this long, then speech is tried again: a hanging espeak-ng costs one call its speech, and
# the calls after it neither wait for it nor lose their gong.
SPEECH_RETRY_S = 300.0


class AudioError(HardwareError):
    """Sound output or speech synthesis failed."""


VOICE_CHECK_S = 5.0  # asking espeak-ng whether it has a voice (it answers in 10-100 ms)


def espeak_has_voice(voice: str) -> bool | None:
    """Whether the espeak-ng program has ``voice`` (a language code, a voice name, with a ``+variant``), or
    None when it cannot tell: no program, no answer, or it fails with an English voice too (then the program
    is broken, not the voice)."""
    binary = shutil.which("espeak-ng") or shutil.which("espeak")
    if binary is None:
        return None

    def speaks(v: str) -> bool | None:
        try:
            cmd = [binary, "-v", v, "-q", "--", "."]  # -q: nothing is played
            proc = subprocess.run(cmd, capture_output=True, timeout=VOICE_CHECK_S, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.returncode == 0

    found = speaks(voice)
    if found is False and speaks("en") is not True:
        return None
    return found


def synth_timeout(text: str) -> float:
    """The longest a synthesis of ``text`` may take (tied to its length; see ``SYNTH_BASE_S``)."""
    return SYNTH_BASE_S + SYNTH_PER_CHAR_S * len(text)


def wav_seconds(path: str | Path) -> float:
    """Duration of a PCM WAV file in seconds."""
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


# ------------------------------------------------------------------------------------------ synthesis
class Synthesizer(Protocol):
    name: str

    def synthesize(self, text: str, lang: str, path: Path) -> Path: ...

    def close(self) -> None: ...


class EspeakCliSynth:
    """Speech through the ``espeak-ng`` program (``-w`` writes a WAV file)."""

    name = "espeak-ng"

    def __init__(self, rate: int = 150, volume: float = 1.0, binary: str | None = None):
        self.binary = binary or shutil.which("espeak-ng") or shutil.which("espeak")
        if self.binary is None:
            raise AudioError(
                "espeak-ng is not installed: apt-get install espeak-ng (or: make sysdeps)",
                fault=FaultCode.SPEECH_MISSING,
            )
        self.rate = rate
        self.amplitude = max(0, min(200, round(volume * 100)))

    def synthesize(self, text: str, lang: str, path: Path) -> Path:
        cmd = [
            self.binary,
            "-v",
            lang,
            "-s",
            str(self.rate),
            "-a",
            str(self.amplitude),
            "-w",
            str(path),
            "--",
            text,
        ]
        limit = synth_timeout(text)
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            raise AudioError(
                f"espeak-ng took longer than {limit:.1f} s for {text!r}",
                fault=FaultCode.SPEECH_TIMEOUT,
            ) from None
        if proc.returncode != 0 or not path.exists():
            raise AudioError(
                f"espeak-ng failed ({proc.returncode}): {proc.stderr.decode(errors='replace').strip()[:200]}",
                fault=FaultCode.SPEECH_FAILED,
            )
        return path

    def close(self) -> None:
        pass


#: How long a WAV that pyttsx3 writes after runAndWait returned is waited for.
WAV_WAIT_S = 2.0


def _has_audio(path: Path) -> bool:
    """A WAV with more than its 44-byte header (an empty or half-opened file has none)."""
    try:
        return path.stat().st_size > 44
    except OSError:
        return False


class Pyttsx3Synth:
    """pyttsx3 + espeak-ng on one dedicated thread that owns the engine."""

    name = "pyttsx3"

    def __init__(self, rate: int = 150, timeout: float | None = None):
        self.rate = rate
        self.timeout = timeout  # per phrase; None: ``synth_timeout`` of its text
        self._jobs: queue.Queue[tuple[str, str, Path, Future[Path]] | None] = queue.Queue()
        self._ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, name="tts-pyttsx3", daemon=True)
        self._thread.start()
        try:
            self._ready.result(timeout=ENGINE_START_S)
        except TimeoutError:
            raise AudioError("pyttsx3 did not initialise in time", fault=FaultCode.SPEECH_TIMEOUT) from None
        except Exception as exc:
            raise AudioError(
                f"pyttsx3 with espeak-ng is not available: {exc}", fault=FaultCode.SPEECH_MISSING
            ) from exc

    def _run(self) -> None:
        try:
            import pyttsx3

            engine = pyttsx3.init("espeak")
            engine.setProperty("rate", self.rate)
            engine.setProperty("volume", 1.0)
        except Exception as exc:  # library missing, libespeak-ng missing
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        while True:
            job = self._jobs.get()
            if job is None:
                return
            text, lang, path, fut = job
            try:
                engine.setProperty("voice", lang)
                engine.save_to_file(text, str(path))
                engine.runAndWait()
                # pyttsx3 2.99 writes the WAV in espeak's end-of-message callback, which can come after
                # runAndWait has returned (seen on the demo's first call: "no audio", then "Audio saved").
                deadline = time.monotonic() + WAV_WAIT_S
                while not _has_audio(path) and time.monotonic() < deadline:
                    time.sleep(0.02)
                if not _has_audio(path):
                    raise AudioError(f"pyttsx3 wrote no audio for {text!r}", fault=FaultCode.SPEECH_FAILED)
                fut.set_result(path)
            except Exception as exc:
                fut.set_exception(exc)

    def synthesize(self, text: str, lang: str, path: Path) -> Path:
        if not self._thread.is_alive():
            raise AudioError("the pyttsx3 thread has stopped", fault=FaultCode.SPEECH_FAILED)
        fut: Future[Path] = Future()
        self._jobs.put((text, lang, path, fut))
        limit = self.timeout if self.timeout is not None else synth_timeout(text)
        try:
            return fut.result(timeout=limit)
        except TimeoutError:
            raise AudioError(
                f"pyttsx3 hung for {limit:.1f} s on {text!r}", fault=FaultCode.SPEECH_TIMEOUT
            ) from None

    def close(self) -> None:
        self._jobs.put(None)


class AutoSynth:
    """pyttsx3 while it works, the espeak-ng program from its first failure on."""

    def __init__(self, rate: int = 150):
        self.rate = rate
        self._primary: Synthesizer | None = None
        self._fallback: Synthesizer | None = None
        try:
            self._primary = Pyttsx3Synth(rate)
        except AudioError as exc:
            log.warning("%s; using the espeak-ng program", exc)

    @property
    def name(self) -> str:
        return self._primary.name if self._primary else "espeak-ng"

    def synthesize(self, text: str, lang: str, path: Path) -> Path:
        if self._primary is not None:
            try:
                return self._primary.synthesize(text, lang, path)
            except AudioError as exc:
                log.error("pyttsx3 failed (%s); switching to the espeak-ng program for good", exc)
                self._primary.close()
                self._primary = None
        if self._fallback is None:
            self._fallback = EspeakCliSynth(self.rate)
        return self._fallback.synthesize(text, lang, path)

    def close(self) -> None:
        for s in (self._primary, self._fallback):
            if s is not None:
                s.close()


def make_synth(kind: str, rate: int) -> Synthesizer:
    if kind == "pyttsx3":
        return Pyttsx3Synth(rate)
    if kind == "espeak-ng":
        return EspeakCliSynth(rate)
    return AutoSynth(rate)


# ------------------------------------------------------------------------------------------- playback
class AudioSink(Protocol):
    def play(self, path: Path, volume: float) -> float:
        """Play a WAV file to the end (blocking); return the seconds it lasted."""
        ...

    def close(self) -> None: ...


def sound_card_present(dev_snd: Path = Path("/dev/snd")) -> bool:
    """True when ALSA has a playback device (``/dev/snd/pcm*p``) or the environment names a sound server.

    Without either, pygame's ALSA start would only print ALSA's own noise and fail."""
    if os.environ.get("PULSE_SERVER") or os.environ.get("PIPEWIRE_REMOTE"):
        return True
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and any((Path(runtime) / s).exists() for s in ("pulse/native", "pipewire-0")):
        return True  # a desktop's sound server (it may play without /dev/snd in this process's view)
    try:
        return any(p.name.startswith("pcm") and p.name.endswith("p") for p in dev_snd.iterdir())
    except OSError:
        return False


def use_silent_output_without_card(dev_snd: Path = Path("/dev/snd")) -> bool:
    """On a machine without a sound card (and no ``SDL_AUDIODRIVER`` chosen), play into SDL's dummy output.

    One notice line instead of ALSA's error noise; the announcements still run in real time, so the display
    behaves the same. Returns True when the dummy output was chosen."""
    if os.environ.get("SDL_AUDIODRIVER") or sound_card_present(dev_snd):
        return False
    os.environ["SDL_AUDIODRIVER"] = "dummy"
    log.warning("no sound card found (%s has no playback device): announcements play silently", dev_snd)
    return True


class PygameSink:
    """pygame.mixer at 22.05 kHz mono (espeak-ng's own format, so speech needs no resampling)."""

    def __init__(self, poll_s: float = 0.005):
        use_silent_output_without_card()
        import pygame

        self._pygame = pygame
        self.poll_s = poll_s
        try:
            if not pygame.mixer.get_init():
                pygame.mixer.init(frequency=22050, size=-16, channels=1, buffer=512)
        except pygame.error as exc:
            raise AudioError(
                f"no sound output ({exc}); without a sound card set SDL_AUDIODRIVER=dummy"
            ) from None
        self._channel = pygame.mixer.Channel(0)

    def play(self, path: Path, volume: float) -> float:
        sound = self._pygame.mixer.Sound(str(path))
        sound.set_volume(volume)
        length = sound.get_length()
        self._channel.play(sound)
        # get_busy() turns false when the mixer has taken the last sample.
        deadline = time.monotonic() + length + 2.0
        while self._channel.get_busy() and time.monotonic() < deadline:
            time.sleep(self.poll_s)
        return length

    def close(self) -> None:
        self._channel.stop()


# ------------------------------------------------------------------------------------------- announcer
@dataclass(frozen=True)
class Announcement:
    """One call to announce: the ticket number, the counter's spoken names and the citizen's language."""

    ticket: str
    counter: dict[str, str]
    recall: bool = False
    seq: int | None = None
    lang: str | None = None  # the ticket's language (the call event's "lang"); None: German only
    at: str | None = None  # the counter's id: its call of another ticket supersedes this one while it waits
    ref: Any = None  # the caller's key of the call (handed back to ``on_start`` and ``on_done``)

    def phrases(self, languages: tuple[str, ...]) -> list[tuple[str, str]]:
        return [
            (lang, i18n.announcement(self.ticket, self.counter, lang, recall=self.recall))
            for lang in languages
        ]


@dataclass
class Played:
    """A record of one sound that was played (for health, tests and the benchmark)."""

    seq: int | None
    ticket: str
    kind: str  # "gong" or "speech"
    lang: str
    text: str
    queued: float  # time.monotonic() of announce()
    start: float
    end: float
    seconds: float  # length of the sound


@dataclass
class _Job:
    """One call between the two workers: the synthesis worker adds its WAV files and sets ``done``; the player
    takes what is there when it needs the speech and marks the job ``abandoned`` (a late file is deleted)."""

    item: Announcement
    queued: float
    phrases: list[tuple[str, str]]  # (lang, text)
    files: list[tuple[str, str, Path]] = field(default_factory=list)  # (lang, text, wav)
    finished: bool = False  # the synthesis worker is done with it (all files, an error, or no speech)
    abandoned: bool = False
    changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, lang: str, text: str, path: Path) -> bool:
        with self.changed:
            if not self.abandoned:
                self.files.append((lang, text, path))
                self.changed.notify_all()
                return True
        path.unlink(missing_ok=True)  # the call was played without it
        return False

    def finish(self) -> None:
        with self.changed:
            self.finished = True
            self.changed.notify_all()

    def phrase(self, i: int, timeout: float) -> tuple[str, str, Path] | bool | None:
        """Phrase ``i`` once synthesized; None when there is none (an error, no speech); False when it did not
        come within ``timeout`` (a hung synthesis)."""
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.files) > i or self.finished, timeout):
                return False
            return self.files[i] if len(self.files) > i else None

    def take(self) -> list[tuple[str, str, Path]]:
        """Every file made for it; what comes later is dropped (the call has been played)."""
        with self.changed:
            self.abandoned = True
            return list(self.files)


class Announcer:
    """Announces calls in order: gong, a pause (``gong_pause_s``), the phrase in German (the first screen
    language), then in the ticket's language with its espeak-ng voice and in ``second_language``, separated by
    ``phrase_pause_s``; ``call_gap_s`` of silence before the next call's gong."""

    def __init__(
        self,
        settings: DisplaySettings,
        *,
        sink: AudioSink | None = None,
        synth: Synthesizer | None = None,
        gong: Path = GONG_WAV,
        clock: Callable[[], float] = time.monotonic,
        keep: int = 200,
    ):
        self.settings = settings
        self.languages = settings.spoken_languages(None)  # without a ticket language
        self.gong = gong
        self.clock = clock
        self._sink = sink
        self._synth = synth
        self.played: deque[Played] = deque(maxlen=keep)
        self.errors: deque[str] = deque(maxlen=20)
        self._to_synth: queue.Queue[_Job | None] = queue.Queue()
        self._to_play: queue.Queue[_Job | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._tmp = Path(tempfile.mkdtemp(prefix="waitroom-tts-"))
        self._count = 0
        self._idle = threading.Condition()
        self._pending = 0
        self._newest: dict[str, str] = {}  # counter id -> the ticket of its newest call
        self.skipped = 0  # calls superseded before they were played
        self._last_end: float | None = None
        self._stopping = threading.Event()
        self.on_played: list[Callable[[Played], None]] = []
        self.on_start: list[Callable[[Announcement], None]] = []  # just before a call's gong (player thread)
        self.on_done: list[Callable[[Announcement, bool], None]] = []  # announced (True) or skipped (False)
        self._fail_lock = threading.Lock()
        self.audio_error = ""  # why the last sound did not play ("" = the last one played, or none yet)
        self.speech_error = ""  # why calls are announced with the gong alone ("" = speech works)
        self.speech_fault = ""  # ... as a stable code (waitroom.contract.FaultCode)
        self._speech_retry_at = 0.0
        self._voices: dict[str, str | None] = {}  # language -> the voice that speaks it (None: no voice)
        # called when health() changes (speech failed, or works again)
        self.on_health: list[Callable[[], None]] = []

    @property
    def enabled(self) -> bool:
        return not self.settings.quiet

    def start(self) -> None:
        if not self.enabled:
            log.info("quiet mode: calls are shown, not announced")
            return
        if not self.gong.exists():
            raise AudioError(f"gong sound {self.gong} is missing; run: python -m displays.make_gong")
        if self._sink is None:
            self._sink = PygameSink()
        if self._synth is None and self.settings.speech:
            try:
                self._synth = make_synth(self.settings.tts, self.settings.speech_rate)
            except AudioError as exc:  # the gong still plays
                self._speech_failed(exc)
        for name, target in (("announce-synth", self._synth_loop), ("announce-play", self._play_loop)):
            th = threading.Thread(target=target, name=name, daemon=True)
            th.start()
            self._threads.append(th)
        log.info(
            "announcements on: languages %s, speech %s, volume %.2f",
            "+".join(self.languages),
            self._synth.name if self._synth else "off (gong only)",
            self.settings.volume,
        )

    def stop(self) -> None:
        self._stopping.set()
        self._to_synth.put(None)
        self._to_play.put(None)
        for th in self._threads:
            th.join(timeout=5)
        self._threads.clear()
        if self._synth is not None:
            self._synth.close()
        if self._sink is not None:
            self._sink.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def announce(self, item: Announcement) -> bool:
        """Queue a call; returns False in quiet mode or when stopped."""
        if not self.enabled or not self._threads:
            return False
        langs = self.settings.spoken_languages(i18n.normalize(item.lang))
        job = _Job(item, self.clock(), item.phrases(langs) if self.settings.speech else [])
        with self._idle:
            self._pending += 1
            if item.at is not None:
                self._newest[item.at] = item.ticket
        self._to_synth.put(job)  # its speech is synthesized ...
        self._to_play.put(job)  # ... while the calls before it play, and its gong needs none
        return True

    def _superseded(self, job: _Job) -> bool:
        with self._idle:
            return (
                job.item.at is not None and self._newest.get(job.item.at, job.item.ticket) != job.item.ticket
            )

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every queued announcement has been played."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    @property
    def pending(self) -> int:
        return self._pending

    # -- workers
    def _synth_loop(self) -> None:
        while True:
            job = self._to_synth.get()
            if job is None:
                return
            try:
                if job.phrases and not job.abandoned and self._speaking() and not self._superseded(job):
                    self._synthesize(job)
            finally:
                job.finish()

    def _synthesize(self, job: _Job) -> None:
        for lang, text in job.phrases:
            if job.abandoned:  # played meanwhile without its speech (it was late)
                return
            voice = self._voice(lang)
            if voice is None:  # espeak-ng cannot speak this language: the call's other languages are spoken
                continue
            self._count += 1
            path = self._tmp / f"{self._count:06d}-{lang}.wav"
            try:
                self._synth.synthesize(text, voice, path)  # type: ignore[union-attr]
            except Exception as exc:  # the gong has played or still plays, and the next calls without waiting
                path.unlink(missing_ok=True)
                if getattr(exc, "fault", "") == FaultCode.SPEECH_FAILED and espeak_has_voice(voice) is False:
                    self._no_voice(lang, voice)  # this language's voice, not the speech: not a fault of all
                    continue
                self._speech_failed(exc, job.item.ticket)
                return
            if not job.add(lang, text, path):
                return
        self._speech_works()

    def _voice(self, lang: str) -> str | None:
        """The voice that speaks ``lang``: its voice of ``display.voices`` if espeak-ng has it, else the
        language's own (a voice it does not have would fail every call with the espeak-ng program, and
        pyttsx3 would read the text with the voice of the phrase before it)."""
        if lang in self._voices:
            return self._voices[lang]
        voice = self.settings.voice(lang)
        default = i18n.ESPEAK_VOICES.get(lang, "de")
        if voice != default and espeak_has_voice(voice) is False:
            log.error(
                "display.voices.%s: espeak-ng has no voice %r (espeak-ng --voices lists them); %s is spoken "
                "with its own voice %r",
                lang,
                voice,
                lang,
                default,
            )
            voice = default
        self._voices[lang] = voice
        return voice

    def _no_voice(self, lang: str, voice: str) -> None:
        self._voices[lang] = None
        log.error(
            "espeak-ng has no voice %r for %s: calls are not spoken in %s, their other languages are; "
            "install the voice or set display.voices.%s",
            voice,
            lang,
            lang,
            lang,
        )

    def _speech_off(self) -> bool:
        """Speech is off, or failed within ``SPEECH_RETRY_S``: calls get their gong alone, without waiting."""
        return not self.settings.speech or bool(self.speech_error and self.clock() < self._speech_retry_at)

    def _speaking(self) -> bool:
        """Whether to synthesize now: speech is on and did not fail within ``SPEECH_RETRY_S``."""
        if self._speech_off():
            return False
        if self._synth is None:  # it could not be made at start (espeak-ng not installed): try again
            try:
                self._synth = make_synth(self.settings.tts, self.settings.speech_rate)
            except AudioError as exc:
                self._speech_failed(exc)
                return False
        return True

    def _speech_failed(self, exc: BaseException, ticket: str = "") -> None:
        with self._fail_lock:  # both workers may find it (the player: speech late; the synthesis: its error)
            first = not self.speech_error
            if not first and self.clock() < self._speech_retry_at:
                return  # the same fault, seen by the other worker
            self.speech_error = str(exc)[:200]
            self.speech_fault = getattr(exc, "fault", "") or FaultCode.SPEECH_FAILED
            self._speech_retry_at = self.clock() + SPEECH_RETRY_S
            self.errors.append(f"tts: {exc}")
        if first:  # one line, not one per phrase and call
            log.error(
                "speech synthesis failed%s: %s; calls are announced with the gong alone, speech is tried "
                "again every %.0f s",
                f" for {ticket}" if ticket else "",
                exc,
                SPEECH_RETRY_S,
            )
            self._health_changed()

    def _speech_works(self) -> None:
        if self.speech_error:
            log.info("speech synthesis works again")
            self.speech_error = ""
            self.speech_fault = ""
            self._health_changed()

    def sound_failed(self, why: str) -> None:
        """No sound came out (the output could not be opened, or a sound did not play): the health says so
        until a sound plays again."""
        first = not self.audio_error
        self.audio_error = why[:200] or "failed"
        if first:
            self._health_changed()

    def _health_changed(self) -> None:
        for cb in self.on_health:
            try:
                cb()
            except Exception:
                log.exception("reporting the announcer's health failed")

    def _play_loop(self) -> None:
        assert self._sink is not None
        while True:
            job = self._to_play.get()
            if job is None:
                return
            announced = False
            try:
                if self._superseded(job):
                    log.info(
                        "call %s at %s not announced: the counter called again", job.item.ticket, job.item.at
                    )
                    self.skipped += 1
                    continue
                self._pause_before(0)
                self._notify(self.on_start, job.item)
                announced = True
                self._play(job, "gong", "", "", self.gong)  # at once: it never waits for the speech
                if not job.phrases or (self._speech_off() and not job.files):
                    continue  # the gong alone (speech off, or failed a moment ago)
                self._pause_before(1)
                for i in range(len(job.phrases)):
                    speech = self._speech_of(job, i)
                    if speech is None:
                        break
                    if i:
                        self._pause_before(2)
                    self._play(job, "speech", *speech)
            finally:
                for _, _, p in job.take():
                    p.unlink(missing_ok=True)
                self._notify(self.on_done, job.item, announced)
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _speech_of(self, job: _Job, i: int) -> tuple[str, str, Path] | None:
        """Phrase ``i`` of the call, after its gong: at once when it is ready; else waited for only while
        speech works, and at most ``synth_timeout`` of its text (then a fault: the next calls do not wait)."""
        speech = job.phrase(i, 0)
        if speech is False and not self._speech_off():
            limit = synth_timeout(job.phrases[i][1])
            speech = job.phrase(i, limit)
            if speech is False:
                self._speech_failed(
                    AudioError(
                        f"speech synthesis hung: no speech for {job.item.ticket} {limit:.1f} s after it was "
                        "needed",
                        fault=FaultCode.SPEECH_TIMEOUT,
                    ),
                    job.item.ticket,
                )
        return speech or None

    def _play(self, job: _Job, kind: str, lang: str, text: str, path: Path) -> None:
        assert self._sink is not None
        start = self.clock()
        try:
            seconds = self._sink.play(path, self.settings.volume)
        except Exception as exc:
            log.error("playing %s failed: %s", path.name, exc)
            self.errors.append(f"play: {exc}")
            self.sound_failed(str(exc))
            return
        if self.audio_error:  # the sound works again (the device is back)
            self.audio_error = ""
            log.info("sound plays again")
            self._health_changed()
        rec = Played(
            job.item.seq, job.item.ticket, kind, lang, text, job.queued, start, self.clock(), seconds
        )
        self._last_end = rec.end
        self.played.append(rec)
        for cb in self.on_played:
            cb(rec)

    def _notify(self, callbacks: list[Callable[..., None]], *args: Any) -> None:
        for cb in callbacks:
            try:
                cb(*args)
            except Exception:
                log.exception("an announcement callback failed")

    def _pause_before(self, index: int) -> None:
        """Silence before sound ``index`` of a call: the gap after the previous call, the gong's tail, ..."""
        s = self.settings
        if index == 0:
            if self._last_end is None:
                return
            wait = self._last_end + s.call_gap_s - self.clock()
        else:
            wait = s.gong_pause_s if index == 1 else s.phrase_pause_s
        if wait > 0:
            self._stopping.wait(wait)

    def _speech_health(self) -> str:
        if not self.enabled or not self.settings.speech:
            return "off"
        return f"error: {self.speech_error}" if self.speech_error else "ok"

    def health(self) -> dict[str, Any]:
        speech = self._speech_health()
        return {
            "audio": "quiet" if not self.enabled else ("error" if self.audio_error else "ok"),
            "speech": speech,
            "speech_fault": (self.speech_fault or None) if speech.startswith("error") else None,
            "announce_queue": self._pending,
            "announce_skipped": self.skipped,
        }
