"""Bad input, part 1: every installed provider refuses bad options locally, naming the field.

For each provider, hypothesis generates options its declared :class:`OptionSpec`\\ s
forbid (wrong types, out of range, not among the choices, too long, too many or
wrong items, unknown names) and the cross-field rules its README documents (mutual
exclusions, options of another API version or transcriber, ranges the spec cannot
express). Each one must be refused by :meth:`Orchestrator.prepare` with an
:class:`InvalidInputError` whose ``field`` names the offending option — and the
provider's sandbox must not have received a single request.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import SAMPLE_WAV
from voxhub import (
    Config,
    InvalidInputError,
    JobKind,
    JobRequest,
    LocalFile,
    Orchestrator,
    RemoteUrl,
    RtcChannel,
    StreamUrl,
)
from voxhub.plugin import OptionSpec
from voxhub.plugins import PluginManager
from voxhub.sandbox import RunningSandbox, serve

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TRANSCODER_DOC: dict[str, Any] = {
    "idleTimeout": 300,
    "audioInputs": [{"rtc": {"rtcChannel": "show", "rtcUid": 1001}}],
    "outputs": [{"rtc": {"rtcChannel": "show-mixed", "rtcUid": 2002}}],
}


def base_request(provider: str) -> JobRequest:
    """A request each provider accepts as it is (the options under test are added to it)."""
    if provider == "agora-stt":
        return JobRequest(provider=provider, media=RtcChannel("fuzz"),
                          options={"languages": ["en-US"]})
    if provider == "agora-transcoder":
        return JobRequest(provider=provider, kind=JobKind.TRANSCODING,
                          options={"config": TRANSCODER_DOC})
    if provider == "tupu":
        return JobRequest(provider=provider, media=StreamUrl("rtmp://live.voxhub.invalid/a/1"),
                          callback_url="http://127.0.0.1:9/callbacks")
    if provider == "local":
        return JobRequest(provider=provider, media=LocalFile(SAMPLE_WAV))
    return JobRequest(provider=provider, media=RemoteUrl("https://media.voxhub.invalid/a.wav"))


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Orchestrator, dict[str, RunningSandbox]]]:
    """Every installed provider configured against its own running sandbox."""
    plugins = PluginManager.load(env={})
    servers = {name: serve(spec.create()) for name, spec in plugins.sandboxes.items()}
    profiles = {name: server.settings() for name, server in servers.items()}
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        orch = Orchestrator(store=Path(tmp) / "jobs.db", config=Config.from_profiles(profiles),
                            plugins=plugins)
        try:
            yield orch, servers
        finally:
            orch.close_resources()
            for server in servers.values():
                server.stop()


def _providers() -> list[str]:
    return sorted(PluginManager.load(env={}).providers)


# --- what a spec forbids -------------------------------------------------------------------

_LETTERS = st.text(alphabet=string.ascii_letters, min_size=1, max_size=12)
_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=6,
)


def _not_parsable_as(kind: type) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        try:
            kind(text)
        except ValueError:
            return True
        return False

    return check


def wrong_type(spec: OptionSpec) -> st.SearchStrategy[Any]:
    """Values of another type, including strings a command line could not convert."""
    kind = spec.type
    nested = st.lists(st.integers(), min_size=1, max_size=3) | st.dictionaries(
        _LETTERS, st.integers(), min_size=1, max_size=2)
    if kind is bool:
        words = _LETTERS.filter(lambda s: s.lower() not in {"true", "false", "yes", "no", "on",
                                                              "off"})
        return st.integers() | st.floats(allow_nan=False) | nested | st.none() | words
    if kind in (int, float):
        text = _LETTERS.filter(_not_parsable_as(kind))
        numbers = st.floats(allow_nan=False).filter(lambda f: not f.is_integer())
        fractions = numbers if kind is int else st.nothing()
        return st.booleans() | nested | st.none() | text | fractions
    if kind is str:
        return st.integers() | st.floats(allow_nan=False) | st.booleans() | nested | st.none()
    if kind is list:
        return (st.integers() | st.booleans() | st.none()
                | st.dictionaries(_LETTERS, st.integers(), min_size=1, max_size=2))
    if kind is dict:
        not_objects = st.sampled_from(["[1, 2]", "not json", "42", '"text"'])
        return st.integers() | st.booleans() | st.none() | st.lists(st.integers(), max_size=2) | (
            not_objects)
    raise AssertionError(f"unknown option type {kind}")


def _item(spec: OptionSpec) -> st.SearchStrategy[Any]:
    return st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=4) if (
        spec.item_type in (str, None)) else st.dictionaries(_LETTERS, st.integers(), max_size=1)


def violations(spec: OptionSpec) -> st.SearchStrategy[Any]:
    """Every kind of value ``spec`` declares invalid."""
    options = [wrong_type(spec)]
    if spec.type is int:
        if spec.min is not None:
            options.append(st.integers(max_value=int(spec.min) - 1))
        if spec.max is not None:
            options.append(st.integers(min_value=int(spec.max) + 1))
    if spec.type is float:
        if spec.min is not None:
            options.append(st.floats(max_value=spec.min - 1e-3, allow_nan=False))
        if spec.max is not None:
            options.append(st.floats(min_value=spec.max + 1e-3, allow_nan=False))
    choices = spec.choices
    if choices is not None:
        options.append(st.text(max_size=12).filter(lambda v: v not in choices))
    if spec.max_length is not None and spec.type is str:
        options.append(st.text(alphabet="ab", min_size=spec.max_length + 1,
                               max_size=spec.max_length + 30))
    if spec.type is list and spec.max_items is not None:
        options.append(st.lists(_item(spec), min_size=spec.max_items + 1,
                                max_size=spec.max_items + 3))
    if spec.type is list and spec.item_type is not None:
        wrong_item = st.integers() if spec.item_type is not int else st.text(min_size=1)
        options.append(st.tuples(st.lists(_item(spec), max_size=2), wrong_item).map(
            lambda t: [*t[0], t[1]]))
    if spec.type is list and spec.item_type is str and spec.max_length is not None:
        options.append(st.just(["a" * (spec.max_length + 1)]))
    return st.one_of(options)


def spec_cases(provider: str) -> st.SearchStrategy[tuple[dict[str, Any], set[str]]]:
    info = PluginManager.load(env={}).provider(provider).info
    specs = list(info.options)
    known = {o.name for o in specs}
    unknown = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=20).filter(
        lambda n: n not in known).map(lambda n: ({n: 1}, {n}))
    if not specs:
        return unknown
    one_bad = st.sampled_from(specs).flatmap(
        lambda spec: violations(spec).map(lambda v: ({spec.name: v}, {spec.name})))
    return one_bad | unknown


# --- what each provider's README documents beyond the specs ------------------------------

_PHRASE = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8)
_URL = st.integers(1, 999).map(lambda n: f"https://hooks.voxhub.invalid/{n}")
_HUMAN_ONLY = {"rush": st.booleans().filter(bool), "test_mode": st.just(True),
               "speaker_names": st.just(["Ana"]),
               "segments_to_transcribe": st.just([{"start": 0, "end": 90}])}
_NOT_FOR_HUMAN = {"remove_disfluencies": st.just(True), "speakers_count": st.integers(1, 5),
                  "speaker_channels_count": st.integers(1, 8),
                  "diarization_type": st.sampled_from(["standard", "premium"]),
                  "summarization_config": st.just({"model": "standard"}),
                  "translation_config": st.just({"target_languages": ["fr"]})}


def _cross(pairs: Mapping[str, st.SearchStrategy[Any]],
           fields: set[str] | None = None) -> st.SearchStrategy[tuple[dict[str, Any], set[str]]]:
    """All options drawn from ``pairs``; the error must name one of ``fields`` (default: all)."""
    names = set(fields or pairs)
    return st.fixed_dictionaries(dict(pairs)).map(lambda opts: (opts, names))


Case = st.SearchStrategy[tuple[dict[str, Any], set[str]]]


def documented_cases(provider: str) -> list[Case]:
    cases: list[Case] = []
    if provider == "revai":
        cases += [
            _cross({"custom_vocabularies": st.lists(_PHRASE, min_size=1, max_size=3),
                    "custom_vocabulary_id": st.just("cv_sandbox")}),
            _cross({"notification_config": _URL.map(lambda u: {"url": u}),
                    "callback_url": _URL}),
            _cross({"summarization_config": st.builds(
                lambda t, p: {"type": t, "prompt": p},
                st.sampled_from(["paragraph", "bullets"]), _PHRASE)}),
            st.sampled_from(sorted(_HUMAN_ONLY)).flatmap(lambda name: st.tuples(
                st.sampled_from(["machine", "low_cost", "fusion"]), _HUMAN_ONLY[name]).map(
                lambda t: ({"transcriber": t[0], name: t[1]}, {name}))),
            st.sampled_from(sorted(_NOT_FOR_HUMAN)).flatmap(lambda name: _NOT_FOR_HUMAN[name].map(
                lambda v: ({"transcriber": "human", name: v}, {name}))),
            _cross({"transcriber": st.just("low_cost"),
                    "diarization_type": st.sampled_from(["standard", "premium"])},
                   {"diarization_type"}),
            _cross({"custom_vocabularies": st.tuples(_PHRASE, st.integers(0, 99)).map(
                lambda t: [f"{t[0]} {t[1]}"])}),  # digits must be spelled out
            _cross({"speaker_names": st.text(alphabet="x", min_size=51, max_size=60).map(
                lambda n: [n]), "transcriber": st.just("human")}, {"speaker_names"}),
            _cross({"language": st.sampled_from(["english", "e", "12", "en_US_x"])}),
            _cross({"translation_config": st.sampled_from(["xx", "klingon", "zz-zz"]).map(
                lambda lang: {"target_languages": [lang]})}),
            _cross({"notification_config": st.just({"url": "https://h.invalid/x",
                                                    "auth_headers": {"Authorization": "a"}})}),
        ]
    elif provider == "agora-stt":
        uid = st.integers(1, 4_294_967_295).map(str)
        cases += [
            _cross({"subscribe_audio_uids": st.lists(uid, min_size=1, max_size=3),
                    "unsubscribe_audio_uids": st.lists(uid, min_size=1, max_size=3)}),
            _cross({"encryption_mode": st.integers(1, 8)}, {"encryption_mode",
                                                            "encryption_secret"}),
            _cross({"encryption_mode": st.just(0), "encryption_secret": _PHRASE},
                   {"encryption_mode", "encryption_secret"}),
            uid.map(lambda u: ({"sub_bot_uid": u, "pub_bot_uid": u},
                               {"sub_bot_uid", "pub_bot_uid"})),
            _cross({"sub_bot_uid": st.sampled_from(["0", "4294967296", "-1", "abc"])}),
            _cross({"api_version": st.sampled_from(["v6", "v7"]),
                    "transfer_mode": st.just(["RTC"])}, {"transfer_mode"}),
            _cross({"api_version": st.sampled_from(["v6", "v7"]),
                    "force_translate_interval": st.integers(2, 5)}, {"force_translate_interval"}),
            _cross({"api_version": st.just("v5"), "unsubscribe_audio_uids": st.just(["7"])},
                   {"unsubscribe_audio_uids"}),
            _cross({"api_version": st.just("v5"),
                    "languages": st.just(["en-US", "ja-JP", "fr-FR"])}, {"languages"}),
            _cross({"translate": st.just({"en-US": ["en-US"]})}),
            _cross({"caption_bucket": _PHRASE}, {"caption_bucket", "caption_vendor",
                                                 "caption_region", "caption_access_key",
                                                 "caption_secret_key"}),
            _cross({"instance_id": st.sampled_from(["has space", "slash/name", "dot.name"])}),
            _cross({"encryption_mode": st.sampled_from([7, 8]), "encryption_secret": _PHRASE,
                    "encryption_salt": st.just("bm90IDMyIGJ5dGVz")}, {"encryption_salt"}),
        ]
    elif provider == "agora-transcoder":
        cases += [
            _cross({"config_file": st.just("/nonexistent/mix.json")},
                   {"config", "config_file"}),  # config is in the base: exactly one is allowed
            # Errors inside the configuration name its JSON path (README), or the option.
            st.integers(-5, 0).map(lambda n: ({"config": {**TRANSCODER_DOC, "idleTimeout": n}},
                                              {"config", "idleTimeout"})),
            _LETTERS.map(lambda k: ({"config": {**TRANSCODER_DOC, f"bogus{k}": 1}},
                                    {"config", f"bogus{k}"})),
        ]
    elif provider == "nhn":
        cases += [
            _cross({"biasing_list": st.lists(_PHRASE, min_size=1, max_size=3)}),  # no "_"
            _cross({"biasing_list": st.just(["a_b_c"])}),
        ]
    elif provider == "tupu":
        cases += [
            _cross({"tasks": st.lists(_PHRASE.map(lambda p: "no-such-task-" + p), min_size=1,
                                      max_size=2)}),
        ]
    elif provider == "local":
        cases += [
            _cross({"kws_threshold": st.floats(1e-30, 1e-5)}, {"kws_threshold", "keyphrase"}),
            _cross({"keyphrase": st.just("hello"), "grammar": st.just("/nonexistent.gram")},
                   {"keyphrase", "grammar"}),
        ]
    elif provider == "echo":
        cases += [_cross({"fail": st.just(True), "text": _PHRASE})]
    return cases


def _check_refused(
    world: tuple[Orchestrator, dict[str, RunningSandbox]],
    provider: str,
    cases: Case,
    examples: int,
) -> None:
    orch, servers = world
    base = base_request(provider)
    orch.prepare(base)  # the base request itself is fine
    server = servers.get(provider)
    before = server.sandbox.counters.get("requests") if server else 0

    @settings(SETTINGS, max_examples=examples)
    @given(case=cases)
    def check(case: tuple[dict[str, Any], set[str]]) -> None:
        bad, fields = case
        request = attrs.evolve(base, options={**base.options, **bad})
        with pytest.raises(InvalidInputError) as info:
            orch.prepare(request)
        assert info.value.field in fields, f"{bad}: named {info.value.field!r}: {info.value}"
        assert info.value.provider == provider

    check()
    if server is not None:
        assert server.sandbox.counters.get("requests") == before, "validation sent requests"


@pytest.mark.parametrize("provider", _providers())
def test_values_their_specs_forbid_are_refused_naming_the_field(
    provider: str, world: tuple[Orchestrator, dict[str, RunningSandbox]]
) -> None:
    _check_refused(world, provider, spec_cases(provider), 40)


@pytest.mark.parametrize(
    ("provider", "index"),
    [(p, i) for p in _providers() for i in range(len(documented_cases(p)))],
)
def test_documented_cross_field_rules_are_refused_naming_the_field(
    provider: str, index: int, world: tuple[Orchestrator, dict[str, RunningSandbox]]
) -> None:
    _check_refused(world, provider, documented_cases(provider)[index], 8)
