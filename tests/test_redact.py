"""Masking secrets by value when there are many of them (a resumed batch of signed URLs).

Registered secrets are global to a process, so these run in a child process: the
thousands registered here must not change how the rest of the suite redacts.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    from voxhub.redact import MASK, redact, redact_text, register_secret

    few = ["tok-abcdef", "tok-abcdef-longer"]
    for value in few:
        register_secret(value)
    # Few values: one regex; a value containing another is masked whole.
    assert redact_text("a tok-abcdef-longer b tok-abcdef c") == f"a {MASK} b {MASK} c"

    # Many values (past the regex's limit): registering stays linear, masking is exact.
    urls = [f"https://media.example/a.wav?sig={i:08d}{'f' * 24}" for i in range(20_000)]
    for url in urls:
        register_secret(url)
    line = f"fetching {urls[12_345]} failed; tok-abcdef-longer; tok-abcdef."
    assert redact_text(line) == f"fetching {MASK} failed; {MASK}; {MASK}.", redact_text(line)
    assert redact({"url": urls[0], "n": 1}) == {"url": MASK, "n": 1}
    assert redact_text("nothing secret here at all") == "nothing secret here at all"
    assert redact_text("tok-abcde") == "tok-abcde"  # a prefix of a secret is not one
    """
)


def test_thousands_of_registered_secrets_are_masked_exactly() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
