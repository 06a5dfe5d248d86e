"""Data sets of the training experiments, as tensors.

* :func:`digits` -- scikit-learn's bundled 8x8 digits (1797 images), pixel values scaled to
  ``[0, 1]``, a stratified train / validation / test split (60 / 20 / 20 %) with a fixed seed.
* :func:`speech_commands` -- a small spoken-command set synthesised locally with ``espeak-ng``
  (10 words; several voices, variants, speeds and pitches; white noise at a random SNR; a random
  time shift), as log-mel features computed with torch. Built once and cached under
  ``build/data/``; deterministic for a given seed. Split by voice: the test and validation
  voices are never heard in training.
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


def speech_commands(*, spec: SpeechSpec = SpeechSpec(), seed: int = 0, cache_dir=None,
                    progress: bool = False, rebuild: bool = False) -> Split:
    """The spoken-command set as ``(N, n_mels, frames)`` log-mel features, normalised with the
    training set's per-mel mean and standard deviation; split by voice (``spec.val_voices``,
    ``spec.test_voices`` held out). Cached as ``speech_<key>_s<seed>.pt`` in ``cache_dir``
    (default ``build/data`` of the checkout, or ``$DENSEHW_DATA``); written atomically."""
    cache = _cache_dir(cache_dir)
    path = cache / f"speech_{spec.key()}_s{seed}.pt"
    blob = None
    if path.exists() and not rebuild:
        try:
            blob = torch.load(path, weights_only=False)
        except Exception as exc:  # noqa: BLE001 - any unreadable cache is rebuilt
            print(f"speech cache {path} unreadable ({exc}); rebuilding")
            blob = None
        if blob is not None and (blob.get("format") != SPEECH_FORMAT or
                                 blob.get("key") != spec.key()):
            blob = None
    if blob is None:
        blob = build_speech(spec, seed=seed, progress=progress)
        cache.mkdir(parents=True, exist_ok=True)
        save_atomic(blob, path)
    x = blob["features"].float()
    y = blob["labels"].long()
    voices = np.array(blob["voices"])
    test = torch.from_numpy(np.isin(voices, spec.test_voices))
    val = torch.from_numpy(np.isin(voices, spec.val_voices))
    train = ~(test | val)
    mean = x[train].mean(dim=(0, 2), keepdim=True)
    std = x[train].std(dim=(0, 2), keepdim=True) + 1e-5
    x = (x - mean) / std
    return Split(x[train], y[train], x[val], y[val], x[test], y[test], len(blob["words"]))
