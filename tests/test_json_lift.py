"""mxconv.wire.b64.loads_json against orjson.loads itself: the same value for every document,
the same error for every malformed one, whether or not base64 strings were lifted out."""

from __future__ import annotations

import numpy as np
import orjson
import pybase64
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mxconv.wire import b64 as tensors


@pytest.fixture()
def small_thresholds(monkeypatch):
    """Lift strings from tiny documents, so that every case below exercises the lifting."""
    monkeypatch.setattr(tensors, "LIFT_DOC_MIN_BYTES", 0)
    monkeypatch.setattr(tensors, "LIFT_STRING_MIN_BYTES", 8)


def _same_as_orjson(doc: bytes) -> None:
    try:
        expected = orjson.loads(doc)
    except orjson.JSONDecodeError as e:
        with pytest.raises(orjson.JSONDecodeError) as info:
            tensors.loads_json(doc)
        assert str(info.value) == str(e)
        return
    assert tensors.loads_json(doc) == expected


B64 = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkrLw=="

CASES = [
    b'{"x": {"dtype": "float32", "shape": [2], "b64": "' + B64.encode() + b'"}}',  # spaced
    b'{"x":{"dtype":"float32","shape":[2],"b64":"' + B64.encode() + b'"},"n":1}',
    b'[{"b64":"' + B64.encode() + b'"},{"b64":"' + B64.encode()[::-1] + b'"}]',
    b'{"x\\"b64":"' + B64.encode() + b'"}',  # a key that only ends in b64
    b'{"b64":"' + B64.encode() + b'","b64":"' + B64.encode()[:-4] + b'"}',  # duplicate key
    b'{"b64":"AAAAAAAA\\/AAAAAAAA"}',  # an escape: not lifted
    b'{"b64":"AAAAAAAA\\u00e9AAAAAAA"}',
    "{\"b64\":\"AAAAAAAAéAAAAAAA\"}".encode(),  # non-ASCII UTF-8
    b'{"b64":"AAAAAAAA\xffAAAAAAA"}',  # invalid UTF-8
    b'{"b64":"AAAAAAAA\x01AAAAAAA"}',  # a control character
    b'{"b64":"AAAAAAAAAAAAAAAA\x7f"}',  # DEL is allowed in JSON strings
    b'{"b64":"AAAAAAAAAAAAAAAA',  # unterminated
    b'{"b64":"AAAAAAAAAAAAAAAA",}',  # a syntax error elsewhere
    b'{"b64":"AAAAAAAAAAAAAAAA" "x":1}',
    b'{"s":"say \\"b64\\":\\"AAAAAAAAAAAAAAAA\\" in a string"}',
    b'"b64":"AAAAAAAAAAAAAAAA"',  # not a document
    b'{"b64":"AAAAAAAAAAAAAAAA"}' * 2,  # two documents
    b'{"b64":' + b'"AAAAAAAAAAAAAAAA"' + b"}",
    b"[" * 200 + b'{"b64":"' + B64.encode() + b'"}' + b"]" * 200,  # deep
    b'{"b64":"mxconv-b64:0000000000000000:0"}',  # looks like a placeholder
    # past the first 64 quotes the pattern itself is searched for
    b'{"a":[' + b",".join(b'"s%d"' % i for i in range(100)) + b'],"b64":"' + B64.encode() + b'"}',
]


@pytest.mark.parametrize("doc", CASES)
def test_the_same_as_orjson(small_thresholds, doc: bytes) -> None:
    _same_as_orjson(doc)


_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False) | st.text()
_tensor = st.binary(min_size=6, max_size=60).map(lambda b: {"b64": pybase64.b64encode(b).decode()})
_values = st.recursive(
    _scalars | _tensor,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_any_document_parses_the_same(value) -> None:
    # hypothesis cannot use function-scoped fixtures: set the thresholds here
    saved = tensors.LIFT_DOC_MIN_BYTES, tensors.LIFT_STRING_MIN_BYTES
    tensors.LIFT_DOC_MIN_BYTES, tensors.LIFT_STRING_MIN_BYTES = 0, 8
    try:
        _same_as_orjson(orjson.dumps(value))
    finally:
        tensors.LIFT_DOC_MIN_BYTES, tensors.LIFT_STRING_MIN_BYTES = saved


def test_a_tensor_document_is_lifted_at_the_real_thresholds(monkeypatch) -> None:
    """A 6.4 MB float32 tensor's document: its string is lifted (the rest is parsed on its
    own), and the tensor decodes bit for bit."""
    x = np.random.default_rng(0).standard_normal((8, 64, 56, 56)).astype(np.float32)
    doc = orjson.dumps({"x": tensors.to_b64_orjson(x), "padding": 1})
    parsed_sizes: list[int] = []
    real_loads = orjson.loads

    def spy(data):
        parsed_sizes.append(len(data))
        return real_loads(data)

    monkeypatch.setattr(tensors.orjson, "loads", spy)
    value = tensors.loads_json(doc)
    monkeypatch.undo()
    assert parsed_sizes and max(parsed_sizes) < 1000  # never the whole 8.6 MB document
    assert value == orjson.loads(doc)
    np.testing.assert_array_equal(tensors.from_b64(value["x"]), x)
