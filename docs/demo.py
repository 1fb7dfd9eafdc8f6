"""The quick-start demo, driven through the real `voxhub` command line.

1. Transcribe docs/samples/hello.wav offline with the `local` provider.
2. Start the Rev.ai sandbox, then run the same file through Rev.ai's whole job
   lifecycle: transcribe to JSON, captions as SRT, list the jobs, close the job.

Everything runs on this machine; the job store is a temporary file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "docs" / "samples" / "hello.wav"
VOXHUB = str(Path(sys.executable).with_name("voxhub"))


def step(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def voxhub(*args: str, env: dict[str, str]) -> str:
    print("$ voxhub " + " ".join(args), flush=True)
    result = subprocess.run([VOXHUB, *args], env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        sys.exit(f"voxhub {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    print(result.stdout, end="" if result.stdout.endswith("\n") else "\n", flush=True)
    return result.stdout


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="voxhub-demo-") as tmp:
        # A private store and config directory: the demo never touches the user's own.
        env = {**os.environ, "VOXHUB_STORE": str(Path(tmp) / "jobs.db"),
               "XDG_CONFIG_HOME": str(Path(tmp) / "config")}
        env.pop("VOXHUB_CONFIG", None)
        step("1. Offline transcription with the local provider (no account, no network)")
        voxhub("transcribe", str(SAMPLE), env=env)

        step("2. The same file through Rev.ai's job lifecycle, against the Rev.ai sandbox")
        sandbox = subprocess.Popen([VOXHUB, "sandbox", "revai"], env=env, stdout=subprocess.PIPE,
                                   text=True)
        try:
            assert sandbox.stdout is not None
            line = json.loads(sandbox.stdout.readline())
            print(f"sandbox listening at {line['base_url']}")
            env["VOXHUB_REVAI_BASE_URL"] = line["base_url"]
            env["VOXHUB_REVAI_TOKEN"] = line["credentials"]["token"]
            voxhub("transcribe", str(SAMPLE), "-p", "revai", "-f", "json", env=env)
            jobs = json.loads(voxhub("jobs", "--provider", "revai", "--json", env=env))
            job = jobs[-1]["job_id"]
            voxhub("fetch", job, "-f", "srt", env=env)
            voxhub("close", job, env=env)
            voxhub("jobs", env=env)
        finally:
            sandbox.terminate()
            sandbox.wait(10)
    print("\ndemo finished: both runs succeeded")


if __name__ == "__main__":
    main()
