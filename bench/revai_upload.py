"""Peak memory and throughput of a Rev.ai multipart upload: voxhub's provider vs the official SDK.

The Rev.ai sandbox runs in this process and stream-reads each upload without
storing it (``store_uploads=False``). Each client runs in a fresh subprocess that
uploads a sparse file (1 GiB by default) and reports its own peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``); a baseline subprocess only
imports both clients, so the difference is what the upload itself costs.

    python bench/revai_upload.py [--size-mib 1024] [--runs 1]

Loopback only. Needs ``voxhub-revai`` and ``rev-ai`` installed.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


def _peak_rss_mib() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _imports() -> None:
    import rev_ai.apiclient  # noqa: F401
    import structlog  # noqa: F401
    import voxhub_revai.provider  # noqa: F401


def child(variant: str, base_url: str, token: str, path: str) -> dict[str, Any]:
    """Run one variant in this (fresh) process and report peak RSS and timing."""
    _imports()
    size = Path(path).stat().st_size
    started = time.perf_counter()
    if variant == "voxhub":
        import structlog
        from voxhub.clock import SystemClock
        from voxhub.models import JobHandle, JobKind, JobRequest, LocalFile
        from voxhub.provider import ProviderContext, ProviderSettings
        from voxhub.redact import Secret
        from voxhub.transport import HttpClient
        from voxhub_revai.provider import RevaiProvider

        provider = RevaiProvider()
        ctx = ProviderContext(
            provider="revai", profile="revai",
            settings=ProviderSettings("revai", "revai", base_url, {"token": Secret(token)}),
            http=HttpClient().bind("revai", retry=provider.info.retry),
            clock=SystemClock(), log=structlog.get_logger("bench"),
        )
        ctx.auth = provider.authenticate(ctx)  # as the core does before any other call
        request = JobRequest(provider="revai", media=LocalFile(path), idempotency_key="bench")
        handle = JobHandle(job_id="vx_bench", provider="revai", kind=JobKind.TRANSCRIPTION,
                           profile="revai", idempotency_key="bench")
        job_id = provider.submit(ctx, request, handle).vendor_ids["job"]
    elif variant == "sdk":
        from rev_ai.apiclient import RevAiAPIClient

        job_id = RevAiAPIClient(token, url=base_url).submit_job_local_file(path).id
    else:
        job_id = None
    seconds = time.perf_counter() - started
    return {"variant": variant, "peak_rss_mib": round(_peak_rss_mib(), 1),
            "seconds": round(seconds, 3), "bytes": size if job_id else 0, "job": job_id}


def run_child(variant: str, base_url: str, token: str, path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", variant, base_url, token, str(path)],
        check=True, capture_output=True, text=True, timeout=1800,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="upload size (default 1024)")
    parser.add_argument("--runs", type=int, default=1, help="runs per variant (median shown)")
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "URL", "TOKEN", "PATH"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return

    from voxhub.sandbox import serve
    from voxhub_revai.sandbox import RevaiSandbox

    sandbox = RevaiSandbox(store_uploads=False, processing_seconds=3600, use_engine=False,
                           max_upload_bytes=max(2_000_000_000, (args.size_mib + 16) * MIB))
    with tempfile.TemporaryDirectory(prefix="voxhub-bench-") as tmp, serve(sandbox) as run:
        media = Path(tmp) / "sparse.wav"
        with media.open("wb") as fh:
            fh.truncate(args.size_mib * MIB)  # sparse: no disk space, reads as zeros
        token = sandbox.token
        rows: dict[str, list[dict[str, Any]]] = {"baseline": [], "voxhub": [], "sdk": []}
        for _ in range(args.runs):
            for variant in rows:
                rows[variant].append(run_child(variant, run.base_url, token, media))
        received = sandbox.counters.get("uploads.bytes")

    def median(variant: str, key: str) -> float:
        return float(statistics.median(r[key] for r in rows[variant]))

    base = median("baseline", "peak_rss_mib")
    print(f"Upload of a {args.size_mib} MiB sparse file to the Rev.ai sandbox "
          f"(loopback, body streamed through and discarded; median of {args.runs} run(s); "
          f"Python {sys.version.split()[0]})\n")
    print("| client | peak RSS (MiB) | over baseline (MiB) | seconds | MiB/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| baseline (imports only) | {base:.1f} | 0 | - | - |")
    stats: dict[str, tuple[float, float, float]] = {}
    for variant, label in (("voxhub", "voxhub-revai"), ("sdk", "rev-ai 2.21 SDK")):
        rss = median(variant, "peak_rss_mib")
        seconds = median(variant, "seconds")
        rate = args.size_mib / seconds if seconds else float("nan")
        stats[variant] = (rss, rss - base, rate)
        print(f"| {label} | {rss:.1f} | {rss - base:.1f} | {seconds:.2f} | {rate:.0f} |")
    v, s = stats["voxhub"], stats["sdk"]
    print()
    print(f"- peak RSS: SDK / voxhub = {s[0] / v[0]:.1f}x")
    print(f"- memory the upload adds over the baseline: voxhub {v[1]:+.1f} MiB "
          f"({max(v[1], 0) / args.size_mib:.3f}x the file), SDK {s[1]:+.0f} MiB "
          f"({s[1] / args.size_mib:.2f}x the file)")
    print(f"- throughput: voxhub / SDK = {v[2] / s[2]:.2f}x")
    print(f"- bytes received by the sandbox: {received} "
          f"(expected {2 * args.runs * args.size_mib * MIB})")


if __name__ == "__main__":
    main()
