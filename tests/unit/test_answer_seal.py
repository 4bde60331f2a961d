"""Sealing at rest: AES-256-GCM with a key derived from each configured Fernet key, keys
rotated by listing them, and values sealed by the earlier Fernet code still readable."""

from __future__ import annotations

import base64

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from workers.answer_seal import FORMAT, AnswerKeyMissing, AnswerSeal, AnswerUnreadable

TEXT = '{"text": "Jag har ont i knät sedan i fredags"}'
# made by the Fernet code before AES-GCM (workers/answer_seal.py at 91e3f06): frozen, as rows are
OLD_KEY = "VxMCAvzSK0DW3gUNmXDaSyeLojwxKrc7u8jIUPmSOYQ="
OLD_TOKEN = (
    "gAAAAABrDzcWAOok9IxlQv2I1Oi7L78Kccd1bqdhQDcUCNMklQafzBbLGEkOVpllgvzQhSAd4469LSBjEg0XDenS"
    "EoNUlbx8d578VC_HE5EnT2sjydTL0-i054iCZa7JMmw1TOzGqAFA"
)


def key() -> str:
    return Fernet.generate_key().decode()


def test_a_sealed_text_opens_to_itself_and_shows_nothing_of_it() -> None:
    seal = AnswerSeal([key()])
    for text in (TEXT, "", "å" * 5000):
        sealed = seal.seal(text)
        assert sealed.startswith(FORMAT) and sealed.isascii()
        assert "knät" not in sealed and "fredags" not in sealed
        assert seal.open(sealed) == text
    assert seal.seal(TEXT) != seal.seal(TEXT), "a fresh nonce per seal"


def test_rotation_the_first_key_seals_and_every_listed_key_opens() -> None:
    old, new = key(), key()
    sealed_before = AnswerSeal([old]).seal(TEXT)
    rotated = AnswerSeal([new, old])
    assert rotated.open(sealed_before) == TEXT
    sealed_after = rotated.seal(TEXT)
    assert AnswerSeal([new]).open(sealed_after) == TEXT
    with pytest.raises(AnswerUnreadable):
        AnswerSeal([old]).open(sealed_after)


def test_a_fernet_token_sealed_by_the_earlier_code_still_opens() -> None:
    assert not OLD_TOKEN.startswith(FORMAT)
    assert AnswerSeal([OLD_KEY]).open(OLD_TOKEN) == TEXT
    assert AnswerSeal([key(), OLD_KEY]).open(OLD_TOKEN) == TEXT, "rotated away from, still read"


def test_a_wrong_key_opens_nothing() -> None:
    sealed = AnswerSeal([key()]).seal(TEXT)
    stranger = AnswerSeal([key()])
    for value in (sealed, OLD_TOKEN):
        with pytest.raises(AnswerUnreadable, match="no configured OMVANT_ANSWER_KEY opens"):
            stranger.open(value)


def test_a_tampered_or_mangled_value_opens_nothing() -> None:
    seal = AnswerSeal([key(), OLD_KEY])
    sealed = seal.seal(TEXT)
    body = sealed[len(FORMAT) :]
    middle = len(FORMAT) + len(body) // 2
    flipped = sealed[:middle] + ("A" if sealed[middle] != "A" else "B") + sealed[middle + 1 :]
    raw = bytearray(base64.urlsafe_b64decode(body))
    raw[-1] ^= 1  # the tag
    for value in (
        flipped,
        FORMAT + base64.urlsafe_b64encode(bytes(raw)).decode(),
        sealed[:-8],
        FORMAT + body[:20],
        FORMAT + body + "!",
        FORMAT + "åäö",
        FORMAT,
        OLD_TOKEN[:40] + ("x" if OLD_TOKEN[40] != "x" else "y") + OLD_TOKEN[41:],
        "not sealed at all",
    ):
        with pytest.raises(AnswerUnreadable):
            seal.open(value)


def test_the_aes_key_is_derived_not_the_fernet_key_material_itself() -> None:
    fernet_key = key()
    raw = base64.urlsafe_b64decode(AnswerSeal([fernet_key]).seal(TEXT)[len(FORMAT) :])
    material = base64.urlsafe_b64decode(fernet_key)
    for reuse in (material, material[:16], material[16:]):  # the whole key, Fernet's halves
        with pytest.raises(InvalidTag):
            AESGCM(reuse).decrypt(raw[:12], raw[12:], None)


def test_a_key_that_is_not_a_fernet_key_is_refused_with_its_message() -> None:
    for keys in ([], ["not-a-key"], [key(), "short"]):
        with pytest.raises(AnswerKeyMissing, match="must be Fernet keys"):
            AnswerSeal(keys)
