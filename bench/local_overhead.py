"""voxhub-local's overhead on short clips: ``Orchestrator.run`` vs faster-whisper called directly.

The four spoken samples of ``docs/samples`` (about 7 s each) and, with
``espeak-ng`` on the PATH, eight sentences of ``local_wer.py``'s clean set
(3-5 s each) are transcribed through voxhub (warm workers; ``run`` = submit, wait, fetch) and by
faster-whisper's ``WhisperModel.transcribe`` in this process with the same
model and settings, three rounds each, alternating. Every round uses fresh
copies of the files, so voxhub's store never answers from an earlier job.
Overhead = voxhub wall time / direct wall time (median of the rounds); the
target is at most 1.1x.

    HF_HUB_OFFLINE=1 python bench/local_overhead.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import local_wer
import soundfile

SAMPLES = Path(__file__).resolve().parents[1] / "docs" / "samples"
CLIPS = ("hello.wav", "meeting.flac", "weather.flac", "office.flac")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="accepted for run_all")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="voxhub-overhead-"))

    sources = [SAMPLES / name for name in CLIPS]
    if shutil.which("espeak-ng"):
        sources += [local_wer.espeak(text, "en-us", work / f"spoken{i}.wav")
                    for i, text in enumerate(local_wer.SENTENCES[:8])]
    seconds = sum(soundfile.info(str(p)).duration for p in sources)

    def copies(tag: str) -> list[Path]:
        made = []
        for source in sources:
            target = work / f"{tag}-{source.name}"
            shutil.copy(source, target)
            made.append(target)
        return made

    through_voxhub, close = local_wer.voxhub_runner("whisper")
    direct = local_wer.direct_whisper()
    for path in copies("warm-up"):
        through_voxhub(path)
        direct(path)
    times: dict[str, list[float]] = {"voxhub": [], "direct": []}
    for n in range(args.rounds):
        clips = copies(f"round{n}")
        for name, run in (("voxhub", through_voxhub), ("direct", direct)):
            started = time.perf_counter()
            for path in clips:
                run(path)
            times[name].append(time.perf_counter() - started)
    close()
    shutil.rmtree(work, ignore_errors=True)
    ours, theirs = statistics.median(times["voxhub"]), statistics.median(times["direct"])
    print(f"### voxhub-local overhead on short clips ({len(sources)} clips of 3-8 s, "
          f"{seconds:.0f} s in all, median of {args.rounds} rounds)\n")
    print("| client | seconds per round | range |\n| --- | ---: | ---: |")
    for name, label in (("direct", "faster-whisper called directly"),
                        ("voxhub", "voxhub Orchestrator.run")):
        print(f"| {label} | {statistics.median(times[name]):.2f} | "
              f"{min(times[name]):.2f}-{max(times[name]):.2f} |")
    verdict = "met" if ours / theirs <= 1.1 else "NOT met"
    print(f"\n- overhead: {ours / theirs:.2f}x (target: at most 1.1x): {verdict}")


if __name__ == "__main__":
    main()
