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
``chunking=utterances`` and with each value of ``--compare`` (default
``pauses,windows``: pieces of up to 30 s cut at pauses, and the earlier
windows), all in the same run.

Why the long-file target is judged on a mean over shifts: ``tiny.en`` is a
chaotic decoder. Shift a clip by a fraction of its 20 ms encoder step (a few
milliseconds of digital silence in front) and its answer changes: the 22
clean and real clips gave 10 to 13 errors at 0, 5, 10 and 15 ms. A single
unshifted run of either side is one draw from that spread, and the long files
place every clip at an arbitrary shift of their own. So ``--phases N``
(default 4) runs both sides at the same N shifts, steps of 20/N ms of leading
silence: the clean and real clips one by one, each behind the shift; and each
long file with the shift in front of the whole file, through voxhub with every
chunking value and through faster-whisper directly. The estimate is the mean
WER over the shifts, and the verdict compares the long files' mean with the
clips' mean, per chunking value. The errors at every shift, their spread and
the unshifted single draws (the earlier comparison) are printed too.
``--max-minutes`` stops starting new shifts after that long; the output says
how many were run.

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

    python bench/local_wer.py --sdist pocketsphinx-5.1.1.tar.gz [--long-minutes 10] [--phases 4]

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


def _default_chunking() -> str:
    """What voxhub-local cuts long files into when no option says (the runs "via" voxhub)."""
    from voxhub_local.options import OPTIONS

    return str(next(o.default for o in OPTIONS if o.name == "chunking"))


DEFAULT_CHUNKING = _default_chunking()

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
        plugins.provider("local").provider.shutdown()

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


def shifted(path: Path, samples: int, target: Path) -> Path:
    """``path`` behind ``samples`` samples of digital silence, written to ``target``."""
    audio, _ = soundfile.read(str(path), dtype="float32")
    return _write(target, np.concatenate([np.zeros(samples, np.float32), audio]))


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
            "words": words, "edits": edits}


# One side of the long-file comparison: its label, then per shift (errors, RTF).
Draws = dict[str, list[tuple[int, float]]]


def run_shift(samples: int, base: list[Clip], short_run: Callable[[Path], str],
              longs: dict[str, Clip], runners: dict[str, Callable[[Path], str]],
              folder: Path, draws: Draws) -> None:
    """Both sides of the comparison at one shift, added to ``draws``."""
    clips = [(shifted(path, samples, folder / f"shift{samples}-{i}.wav"), text)
             for i, (path, text) in enumerate(base)]
    short = measure(short_run, clips)  # a short clip is one piece whatever the chunking
    draws.setdefault(CLIPS, []).append((int(short["edits"]), short["rtf"]))
    for name, (path, text) in longs.items():
        target = shifted(path, samples, folder / f"shift{samples}-{name}.wav")
        for mode, run in runners.items():
            got = measure(run, [(target, text)])
            draws.setdefault(f"{name}, {mode}", []).append((int(got["edits"]), got["rtf"]))
        target.unlink()
    print(f"shift {samples / 16:g} ms: " + "; ".join(
        f"{label} {got[-1][0]}" for label, got in draws.items()), file=sys.stderr)


CLIPS = "clips one by one"


def shift_zero(rows: list[Any]) -> tuple[Draws, dict[str, int]]:
    """The unshifted whisper rows of the main table as shift 0 of each side."""
    draws: Draws = {}
    words: dict[str, int] = {}
    short = [mine for engine, name, _, mine, _ in rows
             if engine == "whisper" and name in ("clean", "real")]
    edits = sum(int(m["edits"]) for m in short)
    wall = sum(m["wall"] for m in short)
    draws[CLIPS] = [(edits, wall / sum(m["audio"] for m in short))]
    words[CLIPS] = sum(int(m["words"]) for m in short)
    for name in ("long", "long, shuffled"):
        for engine, label, _, mine, _theirs in rows:
            if engine != "whisper":
                continue
            if label == name:
                mode = f"{DEFAULT_CHUNKING} (default)"
            elif label.startswith(f"{name} (chunking "):
                mode = label[len(name) + len(" (chunking "):-1]
            else:
                continue
            draws[f"{name}, {mode}"] = [(int(mine["edits"]), mine["rtf"])]
            words[f"{name}, {mode}"] = int(mine["words"])
        direct = next(theirs for engine, label, _, _, theirs in rows
                      if engine == "whisper" and label == name)
        draws[f"{name}, faster-whisper directly"] = [(int(direct["edits"]), direct["rtf"])]
        words[f"{name}, faster-whisper directly"] = int(direct["words"])
    return draws, words


def print_shifts(draws: Draws, words: dict[str, int], shifts_ms: list[float]) -> None:
    """The comparison over shifts: per-shift errors, mean, spread, verdict on means."""
    n = len(shifts_ms)
    print(f"\n#### tiny.en, long files against the same clips one by one, over {n} shift(s) "
          f"of leading silence ({', '.join(f'{ms:g}' for ms in shifts_ms)} ms)\n")
    print("| side | words | errors per shift | mean WER | spread (WER) | unshifted WER "
          "(one draw) | mean RTF | mean minus clips' mean | verdict on means | "
          "verdict on the unshifted draw |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|---|")

    def stats(label: str) -> tuple[float, float, float, float]:
        wers = [e / words[label] for e, _ in draws[label]]
        mean = sum(wers) / n
        var = sum((w - mean) ** 2 for w in wers) / (n - 1) if n > 1 else 0.0
        return mean, min(wers), max(wers), var

    ref_mean, _, _, ref_var = stats(CLIPS)
    ref_one = draws[CLIPS][0][0] / words[CLIPS]
    for label, got in draws.items():
        mean, low, high, var = stats(label)
        counts = ", ".join(str(e) for e, _ in got)
        rtf = sum(r for _, r in got) / n
        row = (f"| {label} | {words[label]} | {counts} | {mean:.2%} | {low:.1%}-{high:.1%} | "
               f"{got[0][0] / words[label]:.1%} | {rtf:.3f} |")
        if label == CLIPS:
            print(row + " | | |")
            continue
        # Standard error of the difference of two means of n draws each: a rough
        # yardstick for how much of the gap the shifts alone could explain.
        error = ((var + ref_var) / n) ** 0.5
        mean_verdict = "no worse" if mean <= ref_mean else "worse"
        one_verdict = "no worse" if got[0][0] / words[label] <= ref_one else "worse"
        print(row + f" {(mean - ref_mean) * 100:+.2f} pp (± {error * 100:.2f}) | "
              f"{mean_verdict} | {one_verdict} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdist", type=Path, help="the pocketsphinx sdist (.tar.gz)")
    parser.add_argument("--long-minutes", type=float, default=10.0)
    parser.add_argument("--engines", default="whisper,pocketsphinx")
    parser.add_argument("--seed", type=int, default=1, help="order of the shuffled long file")
    parser.add_argument("--compare", default="pauses,windows",
                        help="whisper: other chunking values measured on the long files")
    parser.add_argument("--phases", type=int, default=4,
                        help="whisper: shifts (steps of 20/N ms) run on both sides (1: none)")
    parser.add_argument("--max-minutes", type=float, default=0.0,
                        help="start no new shift after this many minutes (0: no limit)")
    args = parser.parse_args()
    if args.phases < 1:
        parser.error("--phases: must be at least 1")
    started = time.monotonic()
    engines = args.engines.split(",")
    draws: Draws = {}
    words: dict[str, int] = {}
    shifts_ms: list[float] = []
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
            if engine == "whisper" and args.long_minutes > 0:
                # Shift 0 is the unshifted run above (the decoder is deterministic);
                # the loop adds the others, both sides at each shift, so a run cut
                # short by --max-minutes stays paired.
                draws, words = shift_zero(rows)
                shifts_ms.append(0.0)
                runners = {f"{DEFAULT_CHUNKING} (default)": via,
                           **{c: r for c, (r, _) in others.items()},
                           "faster-whisper directly": direct}
                longs = {name: sets[name][0] for name in ("long", "long, shuffled")}
                for k in range(1, args.phases):
                    if args.max_minutes and time.monotonic() - started > args.max_minutes * 60:
                        print(f"--max-minutes reached: {k} of {args.phases} shifts run",
                              file=sys.stderr)
                        break
                    shifts_ms.append(k * 20 / args.phases)
                    run_shift(k * 320 // args.phases, base, via, longs, runners, folder, draws)
            close()
            for _, close_other in others.values():
                close_other()
    print(f"#### voxhub-local WER and RTF, {sys.platform}, Python {sys.version.split()[0]}, "
          f"{len(os.sched_getaffinity(0))} CPUs\n")
    print("| engine | set | clips (audio) | WER via voxhub | WER called directly | "
          "RTF via voxhub | RTF called directly | voxhub / direct |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for engine, name, count, mine, theirs in rows:
        print(f"| {engine} | {name} | {count} ({mine['audio']:.0f} s, {mine['words']} words) | "
              f"{mine['wer']:.1%} | {theirs['wer']:.1%} | {mine['rtf']:.3f} | "
              f"{theirs['rtf']:.3f} | {mine['wall'] / theirs['wall']:.2f}x |")
    if draws:
        print_shifts(draws, words, shifts_ms)


if __name__ == "__main__":
    main()
