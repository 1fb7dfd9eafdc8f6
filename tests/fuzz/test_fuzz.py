"""Hostile input (issue 16): options and config files never end in a traceback.

Vendor answers are fuzzed in ``test_fuzz_answers.py``.

Every case must end in a value or a typed :class:`~voxhub.errors.VoxhubError`; anything
else (RecursionError, TypeError, ...) fails the test. Bounded: a few seconds in all.
"""

from __future__ import annotations

import string
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from voxhub.cli.state import parse_options
from voxhub.config import Config
from voxhub.errors import VoxhubError
from voxhub.provider import ProviderInfo

pytest.importorskip("voxhub_revai", reason="the fuzz suite drives the plugins' declarations")
from voxhub_agora.options import STT_INFO, TRANSCODER_INFO
from voxhub_local.options import INFO as LOCAL
from voxhub_nhn.options import INFO as NHN
from voxhub_revai.options import INFO as REVAI
from voxhub_tupu.options import INFO as TUPU

#: Generated cases per kind (printed at the end of the run by this folder's conftest).
CASES: Counter[str] = Counter()
INFOS: list[ProviderInfo] = [REVAI, NHN, TUPU, STT_INFO, TRANSCODER_INFO, LOCAL]
FAST = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                      st.text(max_size=20))
json_values = st.recursive(json_leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)),
    max_leaves=12)
hostile_text = st.one_of(
    st.text(max_size=40),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.sampled_from(['["a",', "{", "NaN", "1e999", "-0", "true", "[1,2", "\x00", "' OR 1=1 --",
                     "a\nb", "x" * 10_000]),
)


@FAST
@given(info=st.sampled_from(INFOS), data=st.data())
def test_every_declared_option_takes_any_cli_text_without_a_traceback(
    info: ProviderInfo, data: st.DataObject
) -> None:
    spec = data.draw(st.sampled_from(info.options)) if info.options else None
    name = spec.name if spec else "anything"
    text = data.draw(hostile_text)
    CASES["options"] += 1
    try:
        options = parse_options((f"{name}={text}",))  # exactly what `--option` goes through
        info.validate_options(options)
    except VoxhubError as exc:
        assert "\n" not in str(exc) or "Traceback" not in str(exc)


def _toml_key(value: str) -> str:
    return value if value and all(c in string.ascii_letters + "_-" for c in value) else "k"


toml_scalar = st.one_of(st.integers(-5, 5).map(str), st.sampled_from(['"x"', "true", "1.5",
                                                                      "[1, 2]", "{a = 1}"]))
toml_files = st.one_of(
    st.lists(st.tuples(st.sampled_from(["voxhub", "revai", "nhn", "tupu", "agora-stt", "odd"]),
                       st.lists(st.tuples(st.sampled_from(
                           ["token", "store", "region", "provider", "base_url", "read_timeout",
                            "app_key", "callback_url", "x"]), toml_scalar), max_size=4)),
             max_size=4).map(lambda sections: "\n".join(
                 f"[{s}]\n" + "\n".join(f"{k} = {v}" for k, v in pairs)
                 for s, pairs in sections)),
    st.integers(1, 6000).map(lambda n: "a = " + "[" * n + "]" * n),
    st.integers(1, 3000).map(lambda n: "a = " + "{b = " * n + "1" + "}" * n),
    st.sampled_from(["voxhub = 5", "revai = 1", "[voxhub]\nstore = 5", "\x00", "[[a]]\nb=1"]),
    st.text(max_size=60),
)


@FAST
@given(text=toml_files)
def test_any_config_file_loads_or_is_a_configuration_error(tmp_path: Path, text: str) -> None:
    CASES["config files"] += 1
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        config = Config.load(path, env={})
        config.masked({i.name: i for i in INFOS})
        for info in INFOS:
            for profile in config.profiles_for(info.name):
                config.settings(info, profile)
    except VoxhubError:
        pass
