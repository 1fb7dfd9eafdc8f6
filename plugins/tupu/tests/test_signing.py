"""Tests for voxhub_tupu.signing."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from voxhub_tupu.signing import (
    KeyConfigurationError,
    SigningError,
    VerificationError,
    generate_key_pair,
    load_private_key,
    load_public_key,
    make_auth_fields,
    sign_payload,
    sign_request,
    signing_string,
    verify_request,
    verify_response,
    write_key_pair,
)

SECRET_ID = "your_secretId"
PASSPHRASE = "correct horse battery staple"


# --------------------------------------------------------------------------
# Fixtures: one key per format, generated once per module (RSA keygen is slow)
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _private_pem(key: rsa.RSAPrivateKey, fmt: str, passphrase: str | None = None) -> bytes:
    private_format = {
        "pkcs1": serialization.PrivateFormat.TraditionalOpenSSL,
        "pkcs8": serialization.PrivateFormat.PKCS8,
    }[fmt]
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, private_format, encryption)


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _pem_body_lines(pem: bytes) -> list[str]:
    return [line for line in pem.decode().splitlines() if line and not line.startswith("-----")]


def _assert_no_key_material(message: str, *pems: bytes) -> None:
    assert "-----BEGIN" not in message
    for pem in pems:
        for line in _pem_body_lines(pem):
            assert line[:24] not in message


def _verify_raw(public: rsa.RSAPublicKey, signature_b64: str, message: bytes) -> None:
    public.verify(base64.b64decode(signature_b64), message, padding.PKCS1v15(), hashes.SHA256())


# --------------------------------------------------------------------------
# Signed string rendering
# --------------------------------------------------------------------------


def test_signing_string_renders_int_and_str_exactly() -> None:
    assert signing_string("sid", 1541499770, "0.8469537531104208") == (
        "sid,1541499770,0.8469537531104208"
    )
    assert signing_string("sid", "1541499770", 42) == "sid,1541499770,42"
    # Strings are verbatim: no normalisation of leading zeros or whitespace.
    assert signing_string("sid", "0015", " 7") == "sid,0015, 7"


@pytest.mark.parametrize("bad", [1.5, True, None, b"1", [1]])
def test_signing_string_rejects_ambiguous_types(bad: Any) -> None:
    with pytest.raises(TypeError):
        signing_string("sid", bad, "1")
    with pytest.raises(TypeError):
        signing_string("sid", 1, bad)


def test_signing_string_rejects_empty_values() -> None:
    for args in (("", 1, 1), ("sid", "", 1), ("sid", 1, "")):
        with pytest.raises(ValueError):
            signing_string(*args)


# --------------------------------------------------------------------------
# Round trips over key formats
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "passphrase"),
    [("pkcs1", None), ("pkcs8", None), ("pkcs8", PASSPHRASE), ("pkcs1", PASSPHRASE)],
)
@pytest.mark.parametrize("as_str", [False, True])
def test_sign_request_round_trip(
    key: rsa.RSAPrivateKey, fmt: str, passphrase: str | None, as_str: bool
) -> None:
    pem = _private_pem(key, fmt, passphrase)
    pem_arg: str | bytes = pem.decode() if as_str else pem
    signature = sign_request(
        SECRET_ID, 1541499770, "0.8469537531104208", pem_arg, passphrase=passphrase
    )
    base64.b64decode(signature, validate=True)  # standard base64 with padding
    _verify_raw(key.public_key(), signature, b"your_secretId,1541499770,0.8469537531104208")
    public: str | bytes = _public_pem(key).decode() if as_str else _public_pem(key)
    verify_request(SECRET_ID, 1541499770, "0.8469537531104208", signature, public)


def test_passphrase_may_be_bytes(key: rsa.RSAPrivateKey) -> None:
    pem = _private_pem(key, "pkcs8", PASSPHRASE)
    assert sign_request("s", 1, 2, pem, passphrase=PASSPHRASE.encode())


def test_signature_is_deterministic_and_field_sensitive(key: rsa.RSAPrivateKey) -> None:
    # PKCS#1 v1.5 is deterministic, so equal inputs give equal signatures.
    assert sign_request("s", 1, 2, key) == sign_request("s", "1", "2", key)
    assert sign_request("s", 1, 2, key) != sign_request("s", 1, 3, key)


def test_sign_payload_round_trip_and_exact_json(key: rsa.RSAPrivateKey) -> None:
    payload = {"code": 0, "message": "成功", "nonce": "0.016", "timestamp": 1552391372490}
    envelope = sign_payload(payload, _private_pem(key, "pkcs8"))
    assert set(envelope) == {"json", "signature"}
    assert "成功" in envelope["json"]  # not \u-escaped, like JSON.stringify
    _verify_raw(key.public_key(), envelope["signature"], envelope["json"].encode("utf-8"))
    body = json.dumps(envelope)
    assert verify_response(body, _public_pem(key)) == payload
    assert verify_response(body.encode(), _public_pem(key).decode()) == payload
    assert verify_response(envelope, key.public_key()) == payload


def test_sign_payload_str_is_signed_verbatim(key: rsa.RSAPrivateKey) -> None:
    text = '{ "code" : 0,  "x": [1, 2] }'
    envelope = sign_payload(text, key)
    assert envelope["json"] == text
    assert verify_response(json.dumps(envelope), key.public_key()) == {"code": 0, "x": [1, 2]}


def test_sign_payload_rejects_unserialisable(key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(SigningError):
        sign_payload({"x": float("nan")}, key)
    with pytest.raises(SigningError):
        sign_payload({"x": object()}, key)


def test_make_auth_fields(key: rsa.RSAPrivateKey) -> None:
    fields = make_auth_fields(SECRET_ID, key, now=1541499770.9)
    assert fields["timestamp"] == 1541499770
    assert isinstance(fields["nonce"], str) and fields["nonce"].isdigit()
    # Round-trip through JSON as it would travel in a body.
    sent = json.loads(json.dumps(fields))
    verify_request(SECRET_ID, sent["timestamp"], sent["nonce"], sent["signature"], key.public_key())


# --------------------------------------------------------------------------
# Key loading and error discipline
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "passphrase"), [("pkcs1", None), ("pkcs8", PASSPHRASE)])
def test_load_private_key_from_path_and_pathlike(
    tmp_path: Path, key: rsa.RSAPrivateKey, fmt: str, passphrase: str | None
) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(_private_pem(key, fmt, passphrase))
    for source in (path, str(path)):
        loaded = load_private_key(source, passphrase)
        assert loaded.private_numbers() == key.private_numbers()


def test_load_keys_der_and_headerless_base64(key: rsa.RSAPrivateKey) -> None:
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    headerless = "\n".join(_pem_body_lines(_private_pem(key, "pkcs8")))
    for source in (der, headerless, headerless.replace("\n", "")):
        assert load_private_key(source).private_numbers() == key.private_numbers()
    pub_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert load_public_key(pub_der).public_numbers() == key.public_key().public_numbers()


def test_load_public_key_formats(key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    pkcs1 = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    path = tmp_path / "pub.pem"
    path.write_bytes(_public_pem(key))
    expected = key.public_key().public_numbers()
    for source in (pkcs1, _public_pem(key).decode(), path, str(path)):
        assert load_public_key(source).public_numbers() == expected


def test_wrong_passphrase_names_file_without_key_material(
    tmp_path: Path, key: rsa.RSAPrivateKey
) -> None:
    pem = _private_pem(key, "pkcs8", PASSPHRASE)
    path = tmp_path / "secret-key.pem"
    path.write_bytes(pem)
    with pytest.raises(KeyConfigurationError) as info:
        load_private_key(path, "wrong")
    assert str(path) in str(info.value)
    assert "passphrase" in str(info.value)
    assert info.value.key_name == str(path)
    _assert_no_key_material(str(info.value), pem)

    with pytest.raises(KeyConfigurationError) as info:
        sign_request("s", 1, 2, pem, passphrase="wrong", key_name="/etc/voxhub/tupu.pem")
    assert "/etc/voxhub/tupu.pem" in str(info.value)
    _assert_no_key_material(str(info.value), pem)


def test_missing_or_superfluous_passphrase(key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(KeyConfigurationError, match="encrypted but no passphrase"):
        sign_request("s", 1, 2, _private_pem(key, "pkcs8", PASSPHRASE), key_name="k.pem")
    with pytest.raises(KeyConfigurationError, match="not encrypted but a passphrase"):
        sign_request("s", 1, 2, _private_pem(key, "pkcs8"), passphrase="x", key_name="k.pem")


def test_garbage_and_truncated_keys(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    pem = _private_pem(key, "pkcs1")
    truncated = pem[: len(pem) // 2] + b"\n-----END RSA PRIVATE KEY-----\n"
    for content in (b"garbage", truncated, b"", b"\x00\xff" * 40):
        with pytest.raises(KeyConfigurationError) as info:
            sign_request("s", 1, 2, content, key_name="/keys/tupu.pem")
        assert "/keys/tupu.pem" in str(info.value)
        _assert_no_key_material(str(info.value), pem)
        path = tmp_path / "bad.pem"
        path.write_bytes(content)
        with pytest.raises(KeyConfigurationError) as info:
            load_private_key(path)
        assert str(path) in str(info.value)
        _assert_no_key_material(str(info.value), pem)


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.pem"
    with pytest.raises(KeyConfigurationError, match=r"nope\.pem"):
        load_private_key(path)
    with pytest.raises(KeyConfigurationError, match=r"nope\.pem"):
        load_public_key(str(path))


def test_non_path_inline_text_is_not_echoed(key: rsa.RSAPrivateKey) -> None:
    # Key text whose header was mangled must not be echoed back as a "path".
    pem = _private_pem(key, "pkcs1").decode()
    mangled = pem.replace("-----BEGIN", "----BEGIN")
    with pytest.raises(KeyConfigurationError) as info:
        load_private_key(mangled)
    _assert_no_key_material(str(info.value), pem.encode())


def test_key_kind_confusion(key: rsa.RSAPrivateKey) -> None:
    private = _private_pem(key, "pkcs8")
    with pytest.raises(KeyConfigurationError, match="private key where a public"):
        load_public_key(private)
    with pytest.raises(KeyConfigurationError) as info:
        load_private_key(_public_pem(key))
    assert "no PEM private key" in str(info.value)
    _assert_no_key_material(str(info.value), private)


def test_non_rsa_keys_are_rejected() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_private = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ec_public = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeyConfigurationError, match="not an RSA key"):
        load_private_key(ec_private)
    with pytest.raises(KeyConfigurationError, match="not an RSA key"):
        load_public_key(ec_public)


def test_bad_public_key_in_verify_is_configuration_error(key: rsa.RSAPrivateKey) -> None:
    envelope = sign_payload({"code": 0}, key)
    with pytest.raises(KeyConfigurationError):
        verify_response(
            json.dumps(envelope), b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        )


# --------------------------------------------------------------------------
# Verification failures
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def envelope(key: rsa.RSAPrivateKey) -> dict[str, str]:
    return sign_payload(
        {"code": 0, "requestId": "61275d377b8d07d33a10cde0", "status": "end", "nonce": "0.89"}, key
    )


def test_forged_with_other_key(other_key: rsa.RSAPrivateKey, key: rsa.RSAPrivateKey) -> None:
    forged = sign_payload({"code": 0}, other_key)
    with pytest.raises(VerificationError, match="does not verify"):
        verify_response(json.dumps(forged), key.public_key())


def test_tampered_json_and_signature(envelope: dict[str, str], key: rsa.RSAPrivateKey) -> None:
    tampered_json = dict(envelope, json=envelope["json"].replace('"code":0', '"code":1'))
    assert tampered_json["json"] != envelope["json"]
    with pytest.raises(VerificationError):
        verify_response(json.dumps(tampered_json), key.public_key())

    raw = bytearray(base64.b64decode(envelope["signature"]))
    raw[-1] ^= 0x01
    tampered_sig = dict(envelope, signature=base64.b64encode(bytes(raw)).decode())
    with pytest.raises(VerificationError) as info:
        verify_response(json.dumps(tampered_sig), key.public_key())
    assert envelope["signature"][:16] not in str(info.value)
    assert tampered_sig["signature"][:16] not in str(info.value)


def test_unsigned_responses(envelope: dict[str, str], key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(VerificationError, match="not signed"):
        verify_response(json.dumps({"json": envelope["json"]}), key.public_key())
    with pytest.raises(VerificationError, match="unsigned error"):
        verify_response('{"error": "gateway timeout"}', key.public_key())
    with pytest.raises(VerificationError, match="not signed"):
        verify_response(envelope["json"], key.public_key())  # bare payload


def _sig(envelope: dict[str, str]) -> str:
    return envelope["signature"]


@pytest.mark.parametrize(
    "make_body",
    [
        lambda e: b"",
        lambda e: b"not json",
        lambda e: b"\xff\xfe{}",
        lambda e: "[1, 2]",
        lambda e: "null",
        lambda e: json.dumps({"signature": _sig(e)}),
        lambda e: json.dumps({"json": json.loads(e["json"]), "signature": _sig(e)}),
        lambda e: json.dumps({"json": e["json"], "signature": None}),
        lambda e: json.dumps({"json": e["json"], "signature": 12}),
        lambda e: json.dumps({"json": e["json"], "signature": ""}),
        lambda e: json.dumps({"json": e["json"], "signature": "!!" + _sig(e)}),
        lambda e: json.dumps({"json": e["json"], "signature": _sig(e).rstrip("=")}),
        lambda e: json.dumps({"json": e["json"], "signature": _sig(e).replace("+", "-")}),
        # Duplicate keys: parsers may disagree on which one was verified.
        lambda e: f'{{"json": {json.dumps(e["json"])}, "json": "{{}}", "signature": "{_sig(e)}"}}',
        lambda e: "[" * 100_000 + "]" * 100_000,
    ],
)
def test_malformed_envelopes(
    make_body: Any, envelope: dict[str, str], key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(VerificationError) as info:
        verify_response(make_body(envelope), key.public_key())
    assert _sig(envelope)[:16] not in str(info.value)


def test_non_object_or_invalid_signed_payload(key: rsa.RSAPrivateKey) -> None:
    for text in ("[1, 2]", '"x"', "not json", "42"):
        with pytest.raises(VerificationError):
            verify_response(json.dumps(sign_payload(text, key)), key.public_key())


def test_wrapped_signature_and_extra_fields_accepted(
    envelope: dict[str, str], key: rsa.RSAPrivateKey
) -> None:
    sig = envelope["signature"]
    wrapped = "\n".join(sig[i : i + 76] for i in range(0, len(sig), 76))
    body = json.dumps({"signature": wrapped, "json": envelope["json"], "extra": 1})
    assert verify_response(body, key.public_key())["status"] == "end"


def test_verify_request_failures(key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey) -> None:
    signature = sign_request(SECRET_ID, 1, "2", key)
    public = key.public_key()
    with pytest.raises(VerificationError):
        verify_request(SECRET_ID, 1, "3", signature, public)
    with pytest.raises(VerificationError):
        verify_request(SECRET_ID, 1, "2", sign_request(SECRET_ID, 1, "2", other_key), public)
    with pytest.raises(VerificationError):
        verify_request(SECRET_ID, 1, 2.0, signature, public)  # type: ignore[arg-type]
    with pytest.raises(VerificationError):
        verify_request(SECRET_ID, 1, "2", "***", public)


_prop_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_prop_settings
@given(data=st.data())
def test_any_mutation_of_json_fails(
    data: st.DataObject, envelope: dict[str, str], key: rsa.RSAPrivateKey
) -> None:
    text = envelope["json"]
    kind = data.draw(st.sampled_from(["replace", "insert", "delete", "swapcase", "whitespace"]))
    pos = data.draw(st.integers(min_value=0, max_value=len(text) - 1))
    if kind == "replace":
        mutated = text[:pos] + data.draw(st.characters()) + text[pos + 1 :]
    elif kind == "insert":
        mutated = text[:pos] + data.draw(st.text(min_size=1, max_size=3)) + text[pos:]
    elif kind == "delete":
        mutated = text[:pos] + text[pos + 1 :]
    elif kind == "swapcase":
        mutated = text[:pos] + text[pos].swapcase() + text[pos + 1 :]
    else:  # reformatting that leaves the parsed JSON identical must still fail
        mutated = text[:pos] + " " + text[pos:] if text[pos] in ",:{}" else text + "\n"
    assume(mutated != text)
    body = json.dumps({"json": mutated, "signature": envelope["signature"]})
    with pytest.raises(VerificationError):
        verify_response(body, key.public_key())


# --------------------------------------------------------------------------
# Interop with the openssl command-line tool
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openssl() -> str:
    exe = shutil.which("openssl")
    if exe is None:
        reason = "openssl executable not found on PATH; interop tests skipped"
        print(reason)
        pytest.skip(reason)
    return exe


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@pytest.mark.parametrize(
    "genkey",
    [
        ["genrsa", "-traditional", "-out", "{key}", "2048"],  # PKCS#1
        ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "{key}"],
        [
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-aes-256-cbc",
            "-pass",
            f"pass:{PASSPHRASE}",
            "-out",
            "{key}",
        ],
    ],
    ids=["genrsa-pkcs1", "genpkey-pkcs8", "genpkey-pkcs8-encrypted"],
)
def test_openssl_interop(openssl: str, tmp_path: Path, genkey: list[str]) -> None:
    key_path, pub_path = tmp_path / "priv.pem", tmp_path / "pub.pem"
    msg_path, sig_path = tmp_path / "msg.txt", tmp_path / "sig.bin"
    encrypted = "-aes-256-cbc" in genkey
    passphrase = PASSPHRASE if encrypted else None
    _run(openssl, *(arg.format(key=key_path) for arg in genkey))
    pass_args = ["-passin", f"pass:{PASSPHRASE}"] if encrypted else []
    _run(openssl, "pkey", "-in", str(key_path), *pass_args, "-pubout", "-out", str(pub_path))
    if "genrsa" in genkey:
        assert b"BEGIN RSA PRIVATE KEY" in key_path.read_bytes()

    # Our request signature verifies with openssl.
    timestamp, nonce = 1541499770, "0.8469537531104208"
    signature = sign_request(
        SECRET_ID,
        timestamp,
        nonce,
        key_path.read_bytes(),
        passphrase=passphrase,
        key_name=str(key_path),
    )
    msg_path.write_bytes(f"{SECRET_ID},{timestamp},{nonce}".encode())
    sig_path.write_bytes(base64.b64decode(signature))
    _run(
        openssl,
        "dgst",
        "-sha256",
        "-verify",
        str(pub_path),
        "-signature",
        str(sig_path),
        str(msg_path),
    )

    # An openssl request signature verifies with verify_request.
    _run(
        openssl,
        "dgst",
        "-sha256",
        "-sign",
        str(key_path),
        *pass_args,
        "-out",
        str(sig_path),
        str(msg_path),
    )
    openssl_sig = base64.b64encode(sig_path.read_bytes()).decode()
    assert openssl_sig == signature  # PKCS#1 v1.5 is deterministic
    verify_request(SECRET_ID, timestamp, nonce, openssl_sig, load_public_key(pub_path))

    # A payload signed by openssl verifies with verify_response.
    payload_text = (
        '{"code":0,"message":"成功","requestId":"61275d377b8d07d33a10cde0","status":"end"}'
    )
    payload_path = tmp_path / "payload.json"
    payload_path.write_bytes(payload_text.encode("utf-8"))
    _run(
        openssl,
        "dgst",
        "-sha256",
        "-sign",
        str(key_path),
        *pass_args,
        "-out",
        str(sig_path),
        str(payload_path),
    )
    body = json.dumps(
        {"json": payload_text, "signature": base64.b64encode(sig_path.read_bytes()).decode()}
    ).encode()
    assert verify_response(body, pub_path.read_bytes()) == json.loads(payload_text)

    # Wrong passphrase on a real openssl-encrypted key.
    if encrypted:
        with pytest.raises(KeyConfigurationError) as info:
            load_private_key(key_path, "nope")
        assert str(key_path) in str(info.value)
        _assert_no_key_material(str(info.value), key_path.read_bytes())


def test_generated_keys_work_with_openssl(openssl: str, tmp_path: Path) -> None:
    private_path, public_path = write_key_pair(tmp_path)
    _run(openssl, "pkey", "-in", str(private_path), "-check", "-noout")
    msg_path, sig_path = tmp_path / "m", tmp_path / "s"
    msg_path.write_bytes(b"sid,1,2")
    sig_path.write_bytes(base64.b64decode(sign_request("sid", 1, 2, private_path.read_bytes())))
    _run(
        openssl,
        "dgst",
        "-sha256",
        "-verify",
        str(public_path),
        "-signature",
        str(sig_path),
        str(msg_path),
    )


# --------------------------------------------------------------------------
# Key generation
# --------------------------------------------------------------------------


def test_generate_key_pair_formats() -> None:
    private_pem, public_pem = generate_key_pair()
    assert private_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    private = load_private_key(private_pem)
    assert private.key_size == 2048
    assert load_public_key(public_pem).public_numbers() == private.public_key().public_numbers()
    with pytest.raises(ValueError):
        generate_key_pair(1024)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_write_key_pair_modes_and_no_overwrite(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "keys"
    private_path, public_path = write_key_pair(target)
    assert private_path == target / "tupu_private.pem"
    assert public_path == target / "tupu_public.pem"
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(public_path.stat().st_mode) == 0o644
    before = private_path.read_bytes(), public_path.read_bytes()
    envelope = sign_payload({"ok": True}, private_path.read_bytes())
    assert verify_response(envelope, public_path.read_bytes()) == {"ok": True}

    with pytest.raises(KeyConfigurationError, match="refusing to overwrite"):
        write_key_pair(target)
    assert (private_path.read_bytes(), public_path.read_bytes()) == before


def test_write_key_pair_refuses_if_only_public_exists(tmp_path: Path) -> None:
    (tmp_path / "tupu_public.pem").write_text("existing")
    with pytest.raises(KeyConfigurationError, match=r"tupu_public\.pem"):
        write_key_pair(tmp_path)
    assert not (tmp_path / "tupu_private.pem").exists()
    assert (tmp_path / "tupu_public.pem").read_text() == "existing"


def test_write_key_pair_refuses_dangling_symlink(tmp_path: Path) -> None:
    (tmp_path / "tupu_private.pem").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(KeyConfigurationError):
        write_key_pair(tmp_path)
    assert not (tmp_path / "elsewhere").exists()
