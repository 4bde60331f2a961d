"""dramatiq messages are read and written by orjson exactly as the stdlib reads and writes them:
the stdlib decides where orjson would refuse, or read or write something else."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers import message_json
from workers.message_guard import GuardedEncoder


def json_values(*, non_finite: bool) -> st.SearchStrategy[object]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**80), max_value=2**80)
        | st.floats(allow_nan=non_finite, allow_infinity=non_finite)
        | st.text()  # lone surrogates included
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=30,
    )


values = json_values(non_finite=False)
"""What a message holds: no contract has a float field, so no NaN but one read from a message."""
read_values = json_values(non_finite=True)


def stdlib_text(value: object) -> str:
    """The stdlib's reading of a value, NaN included (NaN != NaN)."""
    return json.dumps(value, separators=(",", ":"))


@given(values)
def test_what_is_written_reads_back_as_the_stdlib_would_write_it(value: object) -> None:
    written = message_json.dumps(value)
    assert stdlib_text(json.loads(written.decode("utf-8"))) == stdlib_text(value)
    assert stdlib_text(message_json.loads(written)) == stdlib_text(value)


@given(read_values, st.booleans())
def test_stdlib_text_reads_as_the_stdlib_reads_it(value: object, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=1 if ascii_only else None)
    raw = text.encode("utf-8", "surrogatepass")
    try:
        expected = stdlib_text(json.loads(raw.decode("utf-8")))
    except UnicodeDecodeError:
        with pytest.raises(UnicodeDecodeError):
            message_json.loads(raw)
        return
    assert stdlib_text(message_json.loads(raw)) == expected
    again = message_json.dumps(message_json.loads(raw))
    assert stdlib_text(json.loads(again)) == expected  # NaN stays NaN, 2**64 an integer


@pytest.mark.parametrize(
    "value",
    [
        2**64,
        -(2**63) - 1,
        10**30,
        [1, {"n": -(10**19)}],
        "\ud800 lone",
        {"k": "\udfff"},
        message_json.NonFinite("nan"),
        [message_json.NonFinite("inf"), message_json.NonFinite("-inf")],
        {"big": 123456789012345678901234567890, "text": "ok"},
    ],
)
def test_values_orjson_refuses_or_changes_go_through_the_stdlib(value: object) -> None:
    written = message_json.dumps(value)
    assert written == stdlib_text(value).encode()
    assert stdlib_text(message_json.loads(written)) == stdlib_text(value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"n": 18446744073709551616}', {"n": 18446744073709551616}),
        (b"[ -9223372036854775809]", [-9223372036854775809]),
        (b"12345678901234567890123", 12345678901234567890123),
        (b" \t-12345678901234567890123", -12345678901234567890123),
        (b'{"a":\n  [\r\n 98765432109876543210]}', {"a": [98765432109876543210]}),
        (b'{"t": "ref:1234567890123456789012"}', {"t": "ref:1234567890123456789012"}),
    ],
)
def test_integers_beyond_64_bits_are_read_exactly(raw: bytes, expected: object) -> None:
    value = message_json.loads(raw)
    assert value == expected
    assert type(value) is type(expected)


def test_nan_read_is_written_as_nan_again() -> None:
    value = message_json.loads(b'{"a": NaN, "b": [Infinity, -Infinity, 1e400]}')
    assert math.isnan(value["a"])
    assert message_json.dumps(value) == b'{"a":NaN,"b":[Infinity,-Infinity,Infinity]}'


@pytest.mark.parametrize("depth", [200, 300, 900, 1100, 50_000])
def test_deep_nesting_gets_the_stdlib_verdict(depth: int) -> None:
    raw = b"[" * depth + b"]" * depth
    try:
        expected: object = json.loads(raw.decode())
    except RecursionError:
        with pytest.raises(RecursionError):
            message_json.loads(raw)
        return
    assert message_json.loads(raw) == expected


@pytest.mark.parametrize("depth", [254, 255])
def test_orjson_reads_up_to_254_deep_and_the_stdlib_beyond(
    depth: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = b'{"a":' * (depth - 1) + b"[" + b"1," * 300 + b"1]" + b"}" * (depth - 1)
    expected = json.loads(raw)
    calls: list[str] = []

    def stdlib(text: str, **kwargs: object) -> object:
        calls.append(text)
        return json.JSONDecoder(**kwargs).decode(text)  # type: ignore[arg-type]

    monkeypatch.setattr(message_json.json, "loads", stdlib)
    assert message_json.loads(raw) == expected
    assert bool(calls) is (depth > 254)


@pytest.mark.parametrize(
    "raw",
    [
        b"[]," * 300 + b"[]",
        b"[" * 300 + b"]" * 300 + b"],[" + b"[" * 300 + b"]" * 300,
        b"[1]]" + b"[" * 300 + b"]" * 300,
        b"  \n",
    ],
)
def test_text_that_is_not_one_value_is_refused_however_many_brackets(raw: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(raw.decode())
    with pytest.raises(ValueError):
        message_json.loads(raw)


@pytest.mark.parametrize(
    "raw", [b"\xef\xbb\xbf{}", b"{", b"\xff", b"[1,]", b'"\xed\xa0\x80"', b"", b"nul"]
)
def test_text_either_refuses_is_refused_with_the_stdlib_error(raw: bytes) -> None:
    with pytest.raises(Exception) as stdlib:
        json.loads(raw.decode("utf-8"))
    with pytest.raises(type(stdlib.value)):
        message_json.loads(raw)


def test_what_the_stdlib_refuses_to_write_is_refused() -> None:
    import datetime as dt

    for value in (dt.datetime(2026, 1, 1, tzinfo=dt.UTC), {1, 2}, object()):
        with pytest.raises(TypeError):
            json.dumps(value)
        with pytest.raises(TypeError):
            message_json.dumps(value)


def test_the_guarded_encoder_writes_utf8_json_other_consumers_read() -> None:
    fields = {
        "queue_name": "message-composition",
        "actor_name": "compose_messages",
        "args": ({"payload": [{"subject": "Provsvar från vårdcentralen"}]},),
        "kwargs": {},
        "options": {},
        "message_id": "m-1",
        "message_timestamp": 1,
    }
    data = GuardedEncoder().encode(fields)  # type: ignore[arg-type]
    assert "från".encode() in data
    assert json.loads(data) == {**fields, "args": [fields["args"][0]]}
    decoded = GuardedEncoder().decode(data)
    assert decoded["args"] == [fields["args"][0]]
