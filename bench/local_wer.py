"""Word error rate and speed of voxhub-local's engines, and voxhub's overhead over each.

Sets of clips, each with its exact transcript:

* ``clean``, ``noisy``, ``other voice``: twelve sentences of our own, spoken by
  eSpeak NG (voice ``en-us``; the same with white noise at 10 dB SNR, seeded;
  voice ``en-gb-x-rp``). Without ``espeak-ng`` on the PATH, the four spoken
  samples of ``docs/samples`` stand in for the clean set (and, with noise,
  the noisy one); ``other voice`` is then left out.
* ``real``: human speech shipped with a package's sources with its
  transcript: the LibriVox clips (``test/data/librivox``) and the spoken
  card names (``test/data/cards``) of the pocketsphinx sdist. Give the sdist
  with ``--sdist`` (``pip download --no-binary :all: --no-deps pocketsphinx``).
* ``long``: the clean and real clips, each followed by half a second of
  silence, repeated up to ``--long-minutes`` (one file; the target is that
  ``tiny.en`` does no worse on it than on the short clips).
* ``long, shuffled``: the same, but every repetition in another order
  (seeded): a clip meets other neighbours each time, so the figure depends
  less on where the cuts of one fixed order happen to fall.

The long files are transcribed through voxhub with the default
``chunking=pauses`` and with each value of ``--compare`` (default
``utterances,windows``: one piece per utterance, and the earlier windows),
all in the same run.

The short clips' figure is one draw: ``tiny.en`` changes its answer when a
clip is shifted by a fraction of its 20 ms encoder step, and a long file
puts each clip at an arbitrary such shift. ``--phases N`` (default 4) also
transcribes the clean and real clips one by one behind N - 1 other shifts
of digital silence (steps of 20/N ms) and prints the mean, for context;
the verdict stays against the clips as they are.

Each clip is transcribed through voxhub (an :class:`voxhub.Orchestrator`, the
``local`` provider, warm workers: ``run`` = submit, wait, fetch) with engine
``whisper`` (the default, ``tiny.en`` int8) and engine ``pocketsphinx``, and
by each library called directly in this process (faster-whisper's
``WhisperModel.transcribe`` on the whole file with the same model and
settings as voxhub's: int8, beam 5, word timestamps, not conditioned on
earlier text; a
``pocketsphinx.Decoder`` over the whole clip). WER = word-level Levenshtein
distance / reference words, over the whole set, after lower-casing, dropping
punctuation and writing numbers 0-99 as words. RTF = wall seconds / audio
seconds. Overhead = voxhub wall time / direct wall time, same clips.

    python bench/local_wer.py --sdist pocketsphinx-5.1.1.tar.gz [--long-minutes 10]

No network (set ``HF_HUB_OFFLINE=1`` to be sure).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import soxr

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "docs" / "samples"
SENTENCES = (
    "The train to the coast leaves from platform four every morning.",
    "She wrote a short letter to her brother and posted it on the way home.",
    "We need three more chairs for the guests who arrive this evening.",
    "The museum opens at nine and closes early on public holidays.",
    "Please turn off the lights when you leave the office.",
    "A small dog ran across the road and hid under a parked car.",
    "The soup was too hot, so he waited a few minutes before eating.",
    "Our team finished the project two days before the deadline.",
    "The garden behind the house is full of roses in the summer.",
    "He forgot his umbrella and got wet on the way to the station.",
    "The children built a tall tower out of wooden blocks.",
    "Could you send me the report before lunch tomorrow?",
)
_UNITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
          "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
          "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SPELLING = {"mr": "mister", "mrs": "missus", "o'clock": "o'clock"}


def _number(match: re.Match[str]) -> str:
    value = int(match.group(0))
    if value < 20:
        return _UNITS[value]
    if value < 100:
        return _TENS[value // 10] + ("" if value % 10 == 0 else " " + _UNITS[value % 10])
    return match.group(0)


def normalise(text: str) -> list[str]:
    text = re.sub(r"\d+", _number, text.lower().replace("-", " "))
    words = re.sub(r"[^a-z' ]", " ", text).split()
    return [_SPELLING.get(w.strip("'"), w.strip("'")) for w in words if w.strip("'")]


def errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits, reference words)."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        previous, row = row, [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, 1):
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
    return row[-1], len(ref)


# --- the clips --------------------------------------------------------------------------

Clip = tuple[Path, str]  # 16 kHz mono WAV, transcript


def _write(path: Path, audio: np.ndarray[Any, Any]) -> Path:
    soundfile.write(str(path), np.clip(audio, -1, 1).astype(np.float32), 16000, "PCM_16")
    return path


def _noisy(audio: np.ndarray[Any, Any], seed: int, snr_db: float = 10.0) -> np.ndarray[Any, Any]:
    power = float(np.mean(audio ** 2))
    noise = np.random.default_rng(seed).normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)),
                                               len(audio))
    return (audio + noise).astype(np.float32)


def espeak(text: str, voice: str, target: Path) -> Path:
    raw = target.with_suffix(".22k.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text], check=True)
    audio, rate = soundfile.read(str(raw), dtype="float32")
    return _write(target, soxr.resample(audio, rate, 16000))


def synthetic_sets(folder: Path) -> dict[str, list[Clip]]:
    sets: dict[str, list[Clip]] = {"clean": [], "noisy": [], "other voice": []}
    if shutil.which("espeak-ng"):
        for i, text in enumerate(SENTENCES):
            clean = espeak(text, "en-us", folder / f"clean{i}.wav")
            sets["clean"].append((clean, text))
            audio, _ = soundfile.read(str(clean), dtype="float32")
            sets["noisy"].append((_write(folder / f"noisy{i}.wav", _noisy(audio, i)), text))
            sets["other voice"].append((espeak(text, "en-gb-x-rp", folder / f"rp{i}.wav"), text))
        return sets
    print("espeak-ng not found: docs/samples stand in for the synthetic sets", file=sys.stderr)
    for i, name in enumerate(("hello", "meeting", "weather", "office")):
        audio, _ = soundfile.read(str(next(SAMPLES.glob(name + ".*[av]"))), dtype="float32")
        text = (SAMPLES / f"{name}.txt").read_text(encoding="utf-8")
        sets["clean"].append((_write(folder / f"clean{i}.wav", audio), text))
        sets["noisy"].append((_write(folder / f"noisy{i}.wav", _noisy(audio, i)), text))
    del sets["other voice"]
    return sets


def real_set(sdist: Path, folder: Path) -> list[Clip]:
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers()
                   if "/test/data/librivox/" in m.name or "/test/data/cards/" in m.name]
        archive.extractall(folder, members=members, filter="data")
    data = next(folder.glob("*/test/data"))
    clips = [(wav, wav.with_suffix(".txt").read_text(encoding="utf-8").strip())
             for wav in sorted((data / "librivox").glob("*.wav"))]
    for line in (data / "cards" / "cards.transcription").read_text(encoding="utf-8").splitlines():
        match = re.match(r"<s>(.*)</s>\s*\((\w+)\)", line.strip())
        if match:
            clips.append((data / "cards" / f"{match.group(2)}.wav", match.group(1).strip()))
    return clips


def long_clip(clips: list[Clip], minutes: float, target: Path,
              seed: int | None = None) -> Clip:
    """The clips in turn, each with 0.5 s of silence, repeated to ``minutes``.

    With ``seed``, every repetition is in its own random order.
    """
    pause = np.zeros(8000, dtype=np.float32)
    parts, texts, seconds = [], [], 0.0
    shuffler = random.Random(seed)
    while seconds < minutes * 60:
        order = list(clips)
        if seed is not None:
            shuffler.shuffle(order)
        for path, text in order:
            audio, _ = soundfile.read(str(path), dtype="float32")
            parts += [audio, pause]
            texts.append(text)
            seconds += (len(audio) + len(pause)) / 16000
    return _write(target, np.concatenate(parts)), " ".join(texts)


# --- the recognisers ------------------------------------------------------------------------


def voxhub_runner(engine: str, **options: Any) -> tuple[Callable[[Path], str],
                                                        Callable[[], None]]:
    from voxhub import Config, JobRequest, LocalFile, Orchestrator, Transcript
    from voxhub.plugins import PluginManager

    plugins = PluginManager.load(env={"VOXHUB_LOAD_PLUGINS": "voxhub-local"})
    store = Path(tempfile.mkdtemp(prefix="voxhub-wer-")) / "jobs.db"
    orch = Orchestrator(store=store, config=Config.from_profiles({}), plugins=plugins)

    def run(path: Path) -> str:
        outcome = orch.run(JobRequest(provider="local", media=LocalFile(path),
                                      options={"engine": engine, **options}))
        assert outcome.ok and isinstance(outcome.result, Transcript), outcome
        return outcome.result.text

    def close() -> None:
        orch.close_resources()
        plugins.provider("local").provider.shutdown()  # type: ignore[attr-defined]

    return run, close


def direct_whisper() -> Callable[[Path], str]:
    from faster_whisper import WhisperModel
    from voxhub_local.models import packaged_model

    model = WhisperModel(str(packaged_model("tiny.en")), device="cpu", compute_type="int8",
                         cpu_threads=len(os.sched_getaffinity(0)))

    def run(path: Path) -> str:
        segments, _ = model.transcribe(str(path), beam_size=5, word_timestamps=True,
                                       condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segments)

    return run


def direct_sphinx() -> Callable[[Path], str]:
    import pocketsphinx

    model = Path(pocketsphinx.get_model_path()) / "en-us"

    def run(path: Path) -> str:
        decoder = pocketsphinx.Decoder(hmm=str(model / "en-us"),
                                       dict=str(model / "cmudict-en-us.dict"),
                                       lm=str(model / "en-us.lm.bin"), loglevel="ERROR")
        pcm, _ = soundfile.read(str(path), dtype="int16")
        decoder.start_utt()
        decoder.process_raw(pcm.tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return "" if hyp is None else str(hyp.hypstr)

    return run


def shifted_errors(run: Callable[[Path], str], clips: list[Clip], folder: Path,
                   samples: int) -> int:
    """Word errors on ``clips``, each behind ``samples`` samples of digital silence."""
    total = 0
    for index, (path, text) in enumerate(clips):
        audio, _ = soundfile.read(str(path), dtype="float32")
        target = _write(folder / f"shift{samples}-{index}.wav",
                        np.concatenate([np.zeros(samples, np.float32), audio]))
        total += errors(text, run(target))[0]
    return total


def measure(run: Callable[[Path], str], clips: list[Clip]) -> dict[str, float]:
    edits = words = 0
    wall = audio = 0.0
    for path, text in clips:
        started = time.perf_counter()
        hypothesis = run(path)
        wall += time.perf_counter() - started
        audio += soundfile.info(str(path)).duration
        e, n = errors(text, hypothesis)
        edits, words = edits + e, words + n
    return {"wer": edits / max(1, words), "rtf": wall / audio, "wall": wall, "audio": audio,
            "words": words}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdist", type=Path, help="the pocketsphinx sdist (.tar.gz)")
    parser.add_argument("--long-minutes", type=float, default=10.0)
    parser.add_argument("--engines", default="whisper,pocketsphinx")
    parser.add_argument("--seed", type=int, default=1, help="order of the shuffled long file")
    parser.add_argument("--compare", default="utterances,windows",
                        help="whisper: other chunking values measured on the long files")
    parser.add_argument("--phases", type=int, default=4,
                        help="whisper: sub-frame shifts of the short clips (1: none)")
    args = parser.parse_args()
    engines = args.engines.split(",")
    with tempfile.TemporaryDirectory(prefix="voxhub-wer-") as tmp:
        folder = Path(tmp)
        sets = synthetic_sets(folder)
        if args.sdist:
            sets["real"] = real_set(args.sdist, folder)
        base = sets["clean"] + sets.get("real", [])
        if args.long_minutes > 0:
            sets["long"] = [long_clip(base, args.long_minutes, folder / "long.wav")]
            sets["long, shuffled"] = [long_clip(base, args.long_minutes,
                                                folder / "shuffled.wav", seed=args.seed)]
        rows = []
        shifted: list[int] = []
        for engine in engines:
            direct = direct_whisper() if engine == "whisper" else direct_sphinx()
            via, close = voxhub_runner(engine)
            # Other ways of cutting long audio, measured in the same run.
            others = {c: voxhub_runner(engine, chunking=c)
                      for c in (args.compare.split(",") if engine == "whisper" else []) if c}
            for warm in (via, *(r for r, _ in others.values()), direct):  # warm workers
                warm(SAMPLES / "hello.wav")
            for name, clips in sets.items():
                if name.startswith("long") and engine != "whisper":
                    continue  # the pocketsphinx figures on long audio are in local_rtf.py
                mine, theirs = measure(via, clips), measure(direct, clips)
                print(f"{engine} {name}: WER {mine['wer']:.3f} RTF {mine['rtf']:.3f} "
                      f"(direct WER {theirs['wer']:.3f} RTF {theirs['rtf']:.3f})",
                      file=sys.stderr)
                rows.append((engine, name, len(clips), mine, theirs))
                for chunking, (other, _) in others.items() if name.startswith("long") else ():
                    old = measure(other, clips)
                    print(f"{engine} {name}, chunking {chunking}: WER {old['wer']:.3f} "
                          f"RTF {old['rtf']:.3f}", file=sys.stderr)
                    rows.append((engine, f"{name} (chunking {chunking})", len(clips), old,
                                 theirs))
            if engine == "whisper" and args.phases > 1:
                shifted = [shifted_errors(via, base, folder, k * 320 // args.phases)
                           for k in range(1, args.phases)]
            close()
            for _, close_other in others.values():
                close_other()
    print(f"## voxhub-local WER and RTF, {sys.platform}, Python {sys.version.split()[0]}, "
          f"{len(os.sched_getaffinity(0))} CPUs\n")
    print("| engine | set | clips (audio) | WER via voxhub | WER called directly | "
          "RTF via voxhub | RTF called directly | voxhub / direct |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for engine, name, count, mine, theirs in rows:
        print(f"| {engine} | {name} | {count} ({mine['audio']:.0f} s, {mine['words']} words) | "
              f"{mine['wer']:.1%} | {theirs['wer']:.1%} | {mine['rtf']:.3f} | "
              f"{theirs['rtf']:.3f} | {mine['wall'] / theirs['wall']:.2f}x |")
    short = [mine for engine, name, _, mine, _ in rows
             if engine == "whisper" and name in ("clean", "real")]
    longs = [(name, mine) for engine, name, _, mine, _ in rows
             if engine == "whisper" and name.startswith("long")]
    if short and longs:
        edits = sum(round(m["wer"] * m["words"]) for m in short)
        words = sum(m["words"] for m in short)
        print(f"\n- whisper, the long files' clips one by one (clean + real): "
              f"{edits / words:.1%} ({edits} errors in {words} words)")
        if shifted:
            mean = (edits + sum(shifted)) / (1 + len(shifted))
            step = 20 / (1 + len(shifted))
            print(f"- whisper, the same clips behind 0-{step * len(shifted):g} ms of silence "
                  f"(steps of {step:g} ms): "
                  f"{[edits, *shifted]} errors, mean {mean / words:.1%}")
        for name, mine in longs:
            errors_ = round(mine["wer"] * mine["words"])
            verdict = "no worse" if mine["wer"] <= edits / words else "worse"
            print(f"- whisper, {name}: {mine['wer']:.1%} ({errors_} errors in "
                  f"{mine['words']} words): {verdict}")


if __name__ == "__main__":
    main()
