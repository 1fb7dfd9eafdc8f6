"""What the two Agora providers declare: options, credentials and :class:`ProviderInfo`.

Kept light on purpose (no HTTP client, no token code, no werkzeug): ``plugin.py``
lists the providers from here, and each ``info`` names its provider class by an
``entry`` string that is imported only when the provider is first used.
"""

from __future__ import annotations

from voxhub.plugin import (
    Capability,
    CredentialField,
    JobKind,
    OptionSpec,
    PollingHints,
    ProviderInfo,
    RetryPolicy,
)

from .stt_config import API_VERSIONS, MAX_IDLE_TIME, MAX_UNSUBSCRIBE, SLICE_DURATION

__all__ = [
    "CREDENTIALS",
    "DEFAULT_AUTH_TOKEN_EXPIRE",
    "DEFAULT_BOT_TOKEN_EXPIRE",
    "DEFAULT_TRANSCODER_TOKEN_EXPIRE",
    "MAX_TOKEN_EXPIRE",
    "STT_INFO",
    "STT_OPTIONS",
    "TRANSCODER_INFO",
    "TRANSCODER_OPTIONS",
]

#: Default lifetime (s) of the REST-auth tokens built here (Agora caps a token's life at 24 h).
DEFAULT_AUTH_TOKEN_EXPIRE = 3600
MAX_TOKEN_EXPIRE = 86_400
#: Default lifetime (s) of the bots' RTC tokens (STT) and the transcoder's RTC tokens.
DEFAULT_BOT_TOKEN_EXPIRE = 86_400
DEFAULT_TRANSCODER_TOKEN_EXPIRE = 86_400

CREDENTIALS: tuple[CredentialField, ...] = (
    CredentialField("app_id", "App ID of the Agora project (32 hex characters)", secret=False),
    CredentialField(
        "app_certificate",
        "App certificate: signs REST-auth tokens (auth = token) and the bots' RTC tokens",
        required=False,
    ),
    CredentialField("customer_id", "Customer ID for HTTP Basic auth (Console > RESTful API)",
                    required=False),
    CredentialField("customer_secret", "Customer secret for HTTP Basic auth", required=False),
    CredentialField(
        "auth",
        "basic | token (default: basic when customer_id and customer_secret are set, else token)",
        secret=False, required=False,
    ),
    CredentialField(
        "auth_token",
        "a ready AccessToken2 for REST auth (token mode without holding the certificate)",
        required=False,
    ),
    CredentialField(
        "auth_lifetime",
        f"lifetime in seconds of the REST-auth tokens built here (default "
        f"{DEFAULT_AUTH_TOKEN_EXPIRE}, at most {MAX_TOKEN_EXPIRE})",
        secret=False, required=False,
    ),
)

#: How the core retries Agora calls. ``retry_statuses`` is empty because Agora's own
#: back-off (code 20: 3 then 6 s; codes 501/502/504 and HTTP 5xx: 1, 3, 6 s) is applied
#: by :class:`~voxhub_agora.api.AgoraApi` to requests that are safe to repeat; two
#: schedules on top of each other would multiply the attempts. Transport failures and
#: 429 stay with the core; ``max_attempts`` also bounds the core's in-doubt resends.
_RETRY = RetryPolicy(max_attempts=4, backoff_base=1.0, backoff_max=6.0,
                     retry_statuses=frozenset())

STT_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("api_version", str, "v7 (agents API, default) or v6 / v5 (builderToken API)",
               choices=API_VERSIONS, default="v7"),
    OptionSpec("languages", list, "languages to recognise, e.g. en-US,ja-JP (v6/v7: up to 4, "
               "v5: 2); defaults to the request's language", item_type=str, max_items=4),
    OptionSpec("uid_languages", dict, "per-speaker languages (v6/v7), uid -> list of languages, "
               "up to 5 uids with up to 4 languages each"),
    OptionSpec("max_idle_time", int, "seconds without a host before the task ends itself "
               "(default 30)", min=MAX_IDLE_TIME[0], max=MAX_IDLE_TIME[1]),
    OptionSpec("sub_bot_uid", str, "uid of the bot that subscribes to the audio (default: "
               "derived from the channel)"),
    OptionSpec("pub_bot_uid", str, "uid of the bot that publishes captions (default: derived "
               "from the channel)"),
    OptionSpec("sub_bot_token", str, "RTC token of the subscribing bot (default: built from "
               "app_certificate)", secret=True),
    OptionSpec("pub_bot_token", str, "RTC token of the publishing bot (default: built from "
               "app_certificate)", secret=True),
    OptionSpec("bot_token_expire", int, "lifetime of the bot tokens built here, seconds",
               min=60, max=MAX_TOKEN_EXPIRE, default=DEFAULT_BOT_TOKEN_EXPIRE),
    OptionSpec("subscribe_audio_uids", list, 'only transcribe these uids (v5: 3, v6/v7: 32, '
               'or ["all"])', item_type=str, max_items=32),
    OptionSpec("unsubscribe_audio_uids", list, "uids not to transcribe (v6/v7, up to 5)",
               item_type=str, max_items=MAX_UNSUBSCRIBE),
    OptionSpec("encryption_mode", int, "the channel's encryption: 0 none, 1 AES_128_XTS, "
               "2 AES_128_ECB, 3 AES_256_XTS, 4 SM4_128_ECB, 5 AES_128_GCM, 6 AES_256_GCM, "
               "7 AES_128_GCM2, 8 AES_256_GCM2", min=0, max=8),
    OptionSpec("encryption_secret", str, "encryption key (required when encryption_mode is "
               "1..8)", secret=True),
    OptionSpec("encryption_salt", str, "base64 of a 32-byte salt (modes 7 and 8)", secret=True),
    OptionSpec("enable_json_protocol", bool, "push captions as gzip JSON instead of Protobuf"),
    OptionSpec("transfer_mode", list, "v5 only: channels captions are pushed on (RTC, RTM)",
               item_type=str, max_items=2),
    OptionSpec("translate", dict, "translation: source language -> list of up to 5 targets "
               "(v6/v7: up to 4 sources, v5: 2)"),
    OptionSpec("force_translate_interval", int, "v5 only: seconds between forced translations",
               min=2, max=5),
    OptionSpec("caption_bucket", str, "caption files: storage bucket"),
    OptionSpec("caption_vendor", int, "caption files: storage vendor (1 Amazon S3, 5 Azure, "
               "6 Google Cloud; 1..8)", min=1, max=8),
    OptionSpec("caption_region", int, "caption files: storage region code", min=0),
    OptionSpec("caption_access_key", str, "caption files: storage access key", secret=True),
    OptionSpec("caption_secret_key", str, "caption files: storage secret key", secret=True),
    OptionSpec("caption_file_name_prefix", list, "caption files: path segments (letters and "
               "digits, 128 characters in total)", item_type=str),
    OptionSpec("caption_slice_duration", int, "caption files: seconds per file (default 60)",
               min=SLICE_DURATION[0], max=SLICE_DURATION[1]),
    OptionSpec("instance_id", str, "instanceId (v5/v6) / agent name (v7); default: derived "
               "from the idempotency key", max_length=64),
    OptionSpec("dedupe_channel", bool, "reuse a live task of this channel instead of starting "
               "another (default true)", default=True),
    OptionSpec("lock_dir", str, "keep the duplicate-start locks as files in this directory "
               "(default: in the job store, shared by every machine using it)"),
)

STT_INFO = ProviderInfo(
    name="agora-stt",
    kinds=frozenset({JobKind.CHANNEL_TRANSCRIPTION}),
    description="Agora Real-Time STT: live transcription and translation of an RTC "
                "channel (v7 agents API; v5/v6 builderToken API selectable)",
    capabilities=frozenset({Capability.CANCEL, Capability.RECOVER}),
    options=STT_OPTIONS,
    credentials=CREDENTIALS,
    # No default: an unset base_url means "api.agora.io, then api.sd-rtn.com".
    default_base_url=None,
    retry=_RETRY,
    polling=PollingHints(first_poll=2.0, typical_duration=3600.0, max_interval=30.0),
    docs_url="https://docs.agora.io/en/real-time-stt/overview/product-overview",
    entry="voxhub_agora.stt:AgoraSttProvider",
)

TRANSCODER_OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("config", dict, "the transcoder configuration (the 'transcoder' object, or a "
               "whole request body)"),
    OptionSpec("config_file", str, "a JSON or TOML file holding the configuration"),
    OptionSpec("instance_id", str, "instanceId (default: derived from the idempotency key)",
               max_length=64),
    OptionSpec("token_expire", int, "lifetime of the RTC tokens built here, seconds",
               min=60, max=MAX_TOKEN_EXPIRE, default=DEFAULT_TRANSCODER_TOKEN_EXPIRE),
    OptionSpec("lock_dir", str, "keep the duplicate-create locks as files in this directory "
               "(default: in the job store, shared by every machine using it)"),
)

TRANSCODER_INFO = ProviderInfo(
    name="agora-transcoder",
    kinds=frozenset({JobKind.TRANSCODING}),
    description="Agora Cloud Transcoder: mix, composite and relay RTC/CDN streams "
                "(cloudTranscoderV2)",
    capabilities=frozenset({Capability.CANCEL, Capability.DELETE, Capability.RECOVER}),
    options=TRANSCODER_OPTIONS,
    credentials=CREDENTIALS,
    default_base_url=None,
    retry=_RETRY,
    polling=PollingHints(first_poll=5.0, typical_duration=3600.0, max_interval=30.0),
    # Agora allows 10 requests per second per account: the core rate-limits each profile.
    requests_per_second=10.0,
    docs_url="https://docs.agora.io/en/cloud-transcoding/overview/product-overview",
    entry="voxhub_agora.transcoder:AgoraTranscoderProvider",
)
