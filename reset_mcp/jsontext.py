"""Compact JSON text from an encoder built once.

`json.dumps` with any option, and `JSONEncoder.encode` too, build the C encoder again on
every call, which costs more than encoding a small dict; a reset writes about fifteen
(event metadata, payloads, audit details and the hashes over them, token rows). The
function `encoder` returns builds it once, with the options the library would pass it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii
from typing import Any

Encode = Callable[[Any], str]


def encoder(
    *, sort_keys: bool = False, ensure_ascii: bool = True, default: Callable[[Any], Any] | None = None
) -> Encode:
    """`json.JSONEncoder(separators=(",", ":"), ...).encode` as one prepared call: the same
    text for every value (tests/test_jsontext.py holds it to the library). Built without the
    library's reference-cycle bookkeeping, whose shared state a reused encoder cannot keep:
    a value that contains itself raises RecursionError, where the library says ValueError;
    nothing we encode can (payloads are built fresh from records)."""
    reference = json.JSONEncoder(separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=ensure_ascii, default=default)
    if c_make_encoder is None:  # a Python without the C accelerator: the library's own path
        return reference.encode
    make = c_make_encoder(
        None,  # markers: no cycle check (see above)
        reference.default,
        encode_basestring_ascii if ensure_ascii else encode_basestring,
        None,  # indent
        reference.key_separator,
        reference.item_separator,
        sort_keys,
        False,  # skipkeys
        True,  # allow_nan
    )
    join = "".join

    def encode(value: Any) -> str:
        return join(make(value, 0))

    return encode
