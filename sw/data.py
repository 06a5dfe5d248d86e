"""Data sets of the training experiments, as tensors.

* :func:`digits` -- scikit-learn's bundled 8x8 digits (1797 images), pixel values scaled to
  ``[0, 1]``, a stratified train / validation / test split (60 / 20 / 20 %) with a fixed seed.
* :func:`speech_commands` -- a small spoken-command set synthesised locally with ``espeak-ng``
  (10 words; several voices, variants, speeds and pitches; white noise at a random SNR; a random
  time shift), as log-mel features computed with torch. Built once and cached under
  ``build/data/``; deterministic for a given seed. Split by voice: the test and validation
  voices are never heard in training.
* :func:`spoken_intents` -- a spoken-language-understanding set synthesised the same way:
  phrases ("turn the heating up in the bedroom") with 34 intents (action, object, location),
  8 voices x 10 variants, random speeds and pitches, white / pink / babble noise at 0-20 dB
  SNR, log-mel features; split by voice. The sequence-model benchmark.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "Split",
    "digits",
    "class_subset",
    "COMMANDS",
    "SpeechSpec",
    "SMOKE_SPEECH",
    "speech_commands",
    "build_speech",
    "log_mel",
    "mel_filterbank",
    "INTENTS",
    "ACTIONS",
    "OBJECTS",
    "LOCATIONS",
    "IntentSpec",
    "SMOKE_INTENTS",
    "intent_phrase",
    "build_intents",
    "spoken_intents",
    "SEQ_DATASETS",
]

DIGITS_SPLIT_SEED = 20231001


@dataclass
class Split:
    """Tensors of one data set: ``x_*`` float32, ``y_*`` int64, for train / val / test."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    def sizes(self) -> dict:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def save_atomic(obj, path) -> None:
    """``torch.save(obj, path)`` through a temporary file beside ``path``: a reader never
    sees a partial file, and a failed save leaves no file behind."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def digits(*, seed: int = DIGITS_SPLIT_SEED) -> Split:
    """scikit-learn digits as ``(N, 1, 8, 8)`` images in ``[0, 1]``; stratified 60/20/20 split
    with ``seed`` (fixed by default, so every experiment sees the same test set)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    ds = load_digits()
    x = (ds.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = ds.target.astype(np.int64)
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=0.2, stratify=y, random_state=seed)
    train, val = train_test_split(rest, test_size=0.25, stratify=y[rest], random_state=seed + 1)
    t = torch.from_numpy
    return Split(t(x[train]), t(y[train]), t(x[val]), t(y[val]), t(x[test]), t(y[test]), 10)


def class_subset(split: Split, classes) -> Split:
    """The samples of ``classes`` only, labels renumbered ``0..len(classes)-1`` in the given
    order (e.g. digits 5..9 -> 0..4)."""
    classes = list(classes)
    if not classes or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct labels, not {classes!r}")
    lut = torch.full((split.num_classes,), -1, dtype=torch.int64)
    for new, old in enumerate(classes):
        if not 0 <= old < split.num_classes:
            raise ValueError(f"class {old} is outside 0..{split.num_classes - 1}")
        lut[old] = new

    def pick(x, y):
        keep = lut[y] >= 0
        return x[keep], lut[y[keep]]

    parts = [pick(split.x_train, split.y_train), pick(split.x_val, split.y_val),
             pick(split.x_test, split.y_test)]
    return Split(*parts[0], *parts[1], *parts[2], len(classes))


# -- spoken commands ----------------------------------------------------------------------------
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SPEECH_FORMAT = 1


@dataclass(frozen=True)
class SpeechSpec:
    """What to synthesise. Every utterance is ``words x voices x variants x speeds x pitches``;
    ``test_voices`` and ``val_voices`` are held out of training."""

    words: tuple = COMMANDS
    voices: tuple = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp",
                     "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
    variants: tuple = ("", "+f2", "+f4", "+m3")
    speeds: tuple = (120, 150, 180, 210)
    pitches: tuple = (30, 50, 70)
    val_voices: tuple = ("en-gb-x-rp",)
    test_voices: tuple = ("en-us-nyc",)
    snr_db: tuple = (0.0, 20.0)
    sample_rate: int = 16000
    seconds: float = 1.0
    n_mels: int = 40
    hop: int = 256
    n_fft: int = 512

    def key(self) -> str:
        import hashlib
        import json

        blob = json.dumps({k: getattr(self, k) for k in self.__dataclass_fields__},
                          sort_keys=True, default=list)
        return hashlib.sha1(blob.encode()).hexdigest()[:10]


SMOKE_SPEECH = SpeechSpec(voices=("en-us", "en-gb", "en-029"), variants=("",), speeds=(150,),
                          pitches=(50,), val_voices=("en-gb",), test_voices=("en-029",))


def _espeak(word, voice, speed, pitch) -> tuple[np.ndarray, int]:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise OSError("espeak-ng is not installed (Debian: apt-get install espeak-ng; "
                      "`make setup` installs it)")
    out = subprocess.run([exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
                         check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(out)) as w:
        rate = w.getframerate()
        raw = w.readframes(w.getnframes())
    # espeak-ng's stdout WAV may report a bogus length; trust the bytes we got
    data = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    return data, rate


def _resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    if src == dst:
        return x
    n = int(round(len(x) * dst / src))
    t = np.arange(n) * (src / dst)
    return np.interp(t, np.arange(len(x)), x).astype(np.float32)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int) -> torch.Tensor:
    """Triangular HTK-mel filters, shape ``(n_mels, n_fft // 2 + 1)``."""
    def hz_to_mel(f):
        return 2595.0 * math.log10(1.0 + f / 700.0)

    mels = torch.linspace(hz_to_mel(20.0), hz_to_mel(sample_rate / 2), n_mels + 2,
                          dtype=torch.float64)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    up = (bins - lo) / (mid - lo)
    down = (hi - bins) / (hi - mid)
    return torch.clamp(torch.minimum(up, down), min=0.0).float()


def log_mel(wave_batch: torch.Tensor, spec: SpeechSpec) -> torch.Tensor:
    """``log(1e-6 + mel power)`` of ``(N, samples)`` waves -> ``(N, n_mels, frames)``."""
    window = torch.hann_window(spec.n_fft)
    st = torch.stft(wave_batch, spec.n_fft, hop_length=spec.hop, window=window,
                    return_complex=True, center=True)
    power = st.real ** 2 + st.imag ** 2
    fb = mel_filterbank(spec.n_mels, spec.n_fft, spec.sample_rate)
    return torch.log(torch.einsum("mf,nft->nmt", fb, power) + 1e-6)


def build_speech(spec: SpeechSpec, *, seed: int = 0, progress: bool = False) -> dict:
    """Synthesise and featurise the set described by ``spec`` (see :func:`speech_commands`)."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    n = int(spec.sample_rate * spec.seconds)
    combos = list(itertools.product(range(len(spec.words)), spec.voices, spec.variants,
                                    spec.speeds, spec.pitches))
    waves = np.zeros((len(combos), n), dtype=np.float32)
    labels, voices = [], []
    for i, (label, voice, variant, speed, pitch) in enumerate(
            tqdm(combos, desc="espeak-ng", disable=not progress, leave=False)):
        audio, rate = _espeak(spec.words[label], voice + variant, speed, pitch)
        audio = _resample(audio, rate, spec.sample_rate)
        nz = np.flatnonzero(np.abs(audio) > 1e-3)      # trim silence
        if nz.size:
            audio = audio[nz[0]: nz[-1] + 1]
        audio = audio[:n]
        peak = float(np.abs(audio).max()) or 1.0
        audio = audio / peak * rng.uniform(0.3, 1.0)
        start = int(rng.integers(0, n - len(audio) + 1))
        waves[i, start: start + len(audio)] = audio
        power = float(np.mean(audio ** 2)) or 1e-8
        snr = rng.uniform(*spec.snr_db)
        waves[i] += rng.normal(0.0, math.sqrt(power / 10 ** (snr / 10)), n).astype(np.float32)
        labels.append(label)
        voices.append(voice)
    feats = log_mel(torch.from_numpy(waves), spec)
    return {"format": SPEECH_FORMAT, "key": spec.key(), "seed": seed,
            "features": feats.to(torch.float16), "labels": torch.tensor(labels),
            "voices": voices, "words": list(spec.words)}


def _cache_dir(cache_dir) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("DENSEHW_DATA", Path(__file__).resolve().parents[1] /
                               "build" / "data"))


def _cached(path: Path, key: str, fmt: int, build) -> dict:
    """The blob cached at ``path`` when its ``format`` and ``key`` match, else ``build()``
    written there atomically (an unreadable cache is rebuilt)."""
    blob = None
    if path.exists():
        try:
            blob = torch.load(path, weights_only=False)
        except Exception as exc:  # noqa: BLE001 - any unreadable cache is rebuilt
            print(f"data cache {path} unreadable ({exc}); rebuilding")
            blob = None
        if blob is not None and (blob.get("format") != fmt or blob.get("key") != key):
            blob = None
    if blob is None:
        blob = build()
        path.parent.mkdir(parents=True, exist_ok=True)
        save_atomic(blob, path)
    return blob


def _split_by_voice(x, y, voices, val_voices, test_voices, num_classes) -> Split:
    """Per-mel normalisation with the training set's statistics; val / test = the utterances
    of ``val_voices`` / ``test_voices``."""
    voices = np.array(voices)
    test = torch.from_numpy(np.isin(voices, test_voices))
    val = torch.from_numpy(np.isin(voices, val_voices))
    train = ~(test | val)
    mean = x[train].mean(dim=(0, 2), keepdim=True)
    std = x[train].std(dim=(0, 2), keepdim=True) + 1e-5
    x = (x - mean) / std
    return Split(x[train], y[train], x[val], y[val], x[test], y[test], num_classes)


def speech_commands(*, spec: SpeechSpec = SpeechSpec(), seed: int = 0, cache_dir=None,
                    progress: bool = False, rebuild: bool = False) -> Split:
    """The spoken-command set as ``(N, n_mels, frames)`` log-mel features, normalised with the
    training set's per-mel mean and standard deviation; split by voice (``spec.val_voices``,
    ``spec.test_voices`` held out). Cached as ``speech_<key>_s<seed>.pt`` in ``cache_dir``
    (default ``build/data`` of the checkout, or ``$DENSEHW_DATA``); written atomically."""
    path = _cache_dir(cache_dir) / f"speech_{spec.key()}_s{seed}.pt"
    if rebuild and path.exists():
        path.unlink()
    blob = _cached(path, spec.key(), SPEECH_FORMAT,
                   lambda: build_speech(spec, seed=seed, progress=progress))
    return _split_by_voice(blob["features"].float(), blob["labels"].long(), blob["voices"],
                           spec.val_voices, spec.test_voices, len(blob["words"]))


# -- spoken intents (SLU) -----------------------------------------------------------------------
INTENTS_FORMAT = 1

#: Slot values; an intent is one ``(action, object, location)`` triple of :data:`INTENTS`.
ACTIONS = ("activate", "deactivate", "increase", "decrease", "bring")
OBJECTS = ("lights", "lamp", "music", "heat", "volume", "newspaper", "juice", "socks", "shoes")
LOCATIONS = ("none", "kitchen", "bedroom", "washroom")


def _intent_list() -> tuple:
    rooms = LOCATIONS
    out = []
    for act in ("activate", "deactivate"):
        out += [(act, "lights", r) for r in rooms] + [(act, "heat", r) for r in rooms]
        out += [(act, "lamp", "none"), (act, "music", "none")]
    for act in ("increase", "decrease"):
        out += [(act, "volume", "none")] + [(act, "heat", r) for r in rooms]
    out += [("bring", o, "none") for o in ("newspaper", "juice", "socks", "shoes")]
    return tuple(out)


#: The 34 intents (class ``i`` is ``INTENTS[i]``).
INTENTS = _intent_list()

# Phrasings: {o} object word, {l} " in the <room>" (or ""), {r} "<room> " (or "").
_TEMPLATES = {
    "activate": ("turn on the {o}{l}", "switch on the {o}{l}", "turn the {o} on{l}",
                 "{r}{o} on", "activate the {o}{l}", "switch the {r}{o} on"),
    "deactivate": ("turn off the {o}{l}", "switch off the {o}{l}", "turn the {o} off{l}",
                   "{r}{o} off", "deactivate the {o}{l}", "switch the {r}{o} off"),
    "increase": ("turn up the {o}{l}", "increase the {o}{l}", "turn the {o} up{l}",
                 "{r}{o} up", "raise the {r}{o}", "more {o}{l}"),
    "decrease": ("turn down the {o}{l}", "decrease the {o}{l}", "turn the {o} down{l}",
                 "{r}{o} down", "lower the {r}{o}", "less {o}{l}"),
    "bring": ("bring me the {o}", "bring me my {o}", "fetch the {o}", "get me the {o}",
              "i need my {o}", "go get the {o}"),
}
_OBJECT_WORDS = {"lights": ("lights", "light"), "lamp": ("lamp",), "music": ("music",),
                 "heat": ("heating", "heat"), "volume": ("volume", "sound"),
                 "newspaper": ("newspaper", "paper"), "juice": ("juice",),
                 "socks": ("socks",), "shoes": ("shoes",)}
_ROOM_WORDS = {"kitchen": ("kitchen",), "bedroom": ("bedroom",),
               "washroom": ("washroom", "bathroom")}


def intent_phrase(intent: int, rng: np.random.Generator) -> str:
    """A random phrasing of ``INTENTS[intent]`` (template, object and room synonyms)."""
    action, obj, loc = INTENTS[intent]
    template = _TEMPLATES[action][int(rng.integers(len(_TEMPLATES[action])))]
    words = _OBJECT_WORDS[obj]
    o = words[int(rng.integers(len(words)))]
    if loc == "none":
        return " ".join(template.format(o=o, l="", r="").split())
    rooms = _ROOM_WORDS[loc]
    room = rooms[int(rng.integers(len(rooms)))]
    return " ".join(template.format(o=o, l=f" in the {room}", r=f"{room} ").split())


@dataclass(frozen=True)
class IntentSpec:
    """What to synthesise: ``per_voice`` utterances for each voice, each a random intent, a
    random phrasing (:func:`intent_phrase`), voice variant, speed (words per minute, uniform in
    ``speeds``) and pitch (uniform in ``pitches``); silence trimmed, random gain and position
    in a ``seconds`` window; additive noise (white, pink or babble: three other utterances of
    the same voice) at an SNR drawn from ``snr_db``. ``val_voices`` and ``test_voices`` are
    held out of training."""

    voices: tuple = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-gbclan",
                     "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbcwmd")
    variants: tuple = ("", "+f1", "+f2", "+f3", "+f4", "+m1", "+m2", "+m3", "+m4", "+m5")
    per_voice: int = 500
    speeds: tuple = (140, 220)
    pitches: tuple = (20, 80)
    noises: tuple = ("white", "pink", "babble")
    snr_db: tuple = (0.0, 5.0, 10.0, 20.0)
    val_voices: tuple = ("en-gb-x-rp",)
    test_voices: tuple = ("en-us-nyc",)
    sample_rate: int = 16000
    seconds: float = 3.0
    n_mels: int = 40
    hop: int = 400
    n_fft: int = 512

    def key(self) -> str:
        """Digest of what is synthesised (the split is applied when loading)."""
        import hashlib
        import json

        blob = json.dumps({"intents": INTENTS, "templates": _TEMPLATES,
                           "objects": _OBJECT_WORDS, "rooms": _ROOM_WORDS,
                           **{k: getattr(self, k) for k in self.__dataclass_fields__
                              if k not in ("val_voices", "test_voices")}},
                          sort_keys=True, default=list)
        return hashlib.sha1(blob.encode()).hexdigest()[:10]

    @property
    def frames(self) -> int:
        return int(self.sample_rate * self.seconds) // self.hop + 1


SMOKE_INTENTS = IntentSpec(voices=("en-us", "en-gb", "en-029"), per_voice=24,
                           val_voices=("en-gb",), test_voices=("en-029",), seconds=2.0)


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.normal(size=n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spec / np.sqrt(f), n).astype(np.float32)


def build_intents(spec: IntentSpec, *, seed: int = 0, progress: bool = False) -> dict:
    """Synthesise and featurise the set described by ``spec`` (see :func:`spoken_intents`)."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    n = int(spec.sample_rate * spec.seconds)
    feats, labels, voices, texts, noise_kinds, snrs = [], [], [], [], [], []
    clipped = 0
    bar = tqdm(total=len(spec.voices) * spec.per_voice, desc="espeak-ng", disable=not progress,
               leave=False)
    for voice in spec.voices:
        clean = np.zeros((spec.per_voice, n), dtype=np.float32)
        for i in range(spec.per_voice):
            intent = int(rng.integers(len(INTENTS)))
            text = intent_phrase(intent, rng)
            variant = spec.variants[int(rng.integers(len(spec.variants)))]
            speed = int(rng.integers(spec.speeds[0], spec.speeds[1] + 1))
            pitch = int(rng.integers(spec.pitches[0], spec.pitches[1] + 1))
            audio, rate = _espeak(text, voice + variant, speed, pitch)
            audio = _resample(audio, rate, spec.sample_rate)
            nz = np.flatnonzero(np.abs(audio) > 1e-3)
            if nz.size:
                audio = audio[nz[0]: nz[-1] + 1]
            clipped += len(audio) > n
            audio = audio[:n]
            audio = audio / (float(np.abs(audio).max()) or 1.0) * rng.uniform(0.3, 1.0)
            start = int(rng.integers(0, n - len(audio) + 1))
            clean[i, start: start + len(audio)] = audio
            labels.append(intent)
            voices.append(voice)
            texts.append(text)
            bar.update()
        noisy = clean.copy()
        for i in range(spec.per_voice):
            kind = spec.noises[int(rng.integers(len(spec.noises)))]
            if kind == "white":
                noise = rng.normal(size=n).astype(np.float32)
            elif kind == "pink":
                noise = _pink(n, rng)
            elif kind == "babble":
                others = rng.choice(np.delete(np.arange(spec.per_voice), i), 3, replace=False)
                noise = clean[others].sum(axis=0)
            else:
                raise ValueError(f"unknown noise {kind!r}; expected white, pink or babble")
            snr = float(spec.snr_db[int(rng.integers(len(spec.snr_db)))])
            power = float(np.mean(clean[i] ** 2)) or 1e-8
            npow = float(np.mean(noise ** 2)) or 1e-8
            noisy[i] += noise * np.float32(math.sqrt(power / 10 ** (snr / 10) / npow))
            noise_kinds.append(kind)
            snrs.append(snr)
        feats.append(log_mel(torch.from_numpy(noisy), spec).to(torch.float16))
    bar.close()
    return {"format": INTENTS_FORMAT, "key": spec.key(), "seed": seed,
            "features": torch.cat(feats), "labels": torch.tensor(labels), "voices": voices,
            "texts": texts, "noise": noise_kinds, "snr_db": snrs, "clipped": clipped,
            "intents": [list(t) for t in INTENTS]}


def spoken_intents(*, spec: IntentSpec = IntentSpec(), seed: int = 0, cache_dir=None,
                   progress: bool = False, rebuild: bool = False) -> Split:
    """The spoken-intent (SLU) set: ``(N, n_mels, frames)`` log-mel features of phrases such
    as "switch on the kitchen lights", labelled with one of the 34 :data:`INTENTS` (action,
    object, location), normalised with the training set's per-mel mean and standard deviation,
    split by voice (``spec.val_voices``, ``spec.test_voices`` never heard in training). Cached
    as ``intents_<key>_s<seed>.pt`` like :func:`speech_commands`."""
    path = _cache_dir(cache_dir) / f"intents_{spec.key()}_s{seed}.pt"
    if rebuild and path.exists():
        path.unlink()
    blob = _cached(path, spec.key(), INTENTS_FORMAT,
                   lambda: build_intents(spec, seed=seed, progress=progress))
    return _split_by_voice(blob["features"].float(), blob["labels"].long(), blob["voices"],
                           spec.val_voices, spec.test_voices, len(INTENTS))


#: Data sets of the sequence tools by name (``densehw seq --data``).
SEQ_DATASETS = {"intents": spoken_intents, "speech": speech_commands}
