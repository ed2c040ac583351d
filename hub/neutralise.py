"""Text that a spreadsheet would run as a formula, neutralised wherever the hub writes CSV or HTML.

A value that begins with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some spreadsheet
programs skip before looking) is a formula to Excel, WPS and LibreOffice when the file is opened:
``=HYPERLINK("http://…", "点此")`` in a name sent by a source system would become a live link in the party
office's export (CSV injection). Such text is written with a leading apostrophe (``'=1+1``), which every
spreadsheet shows as text and which a reader can see and strip. A plain number (``-5``, ``+3.5``, ``-12%``)
is not a formula and is left alone, and non-text values (numbers, dates) are never touched.

One rule, two forms: :func:`neutralise` for a single value (``hub sql --csv``, the HTML report) and
:func:`neutralise_batch` for Arrow record batches (``hub sql --export``), vectorised.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

PREFIX = "'"
_FORMULA = r"^[=+\-@\t\r]"
_PLAIN_NUMBER = r"^[+-]?[0-9][0-9,]*(\.[0-9]+)?%?$"
_FORMULA_RE, _NUMBER_RE = re.compile(_FORMULA), re.compile(_PLAIN_NUMBER)


def neutralise(value: Any) -> Any:
    """``value`` with a leading apostrophe if it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and _FORMULA_RE.match(value) and not _NUMBER_RE.match(value):
        return PREFIX + value
    return value


def neutralise_array(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A string array with every formula-like value prefixed (other types returned as they are)."""
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return array
    risky = pc.and_(pc.match_substring_regex(array, _FORMULA),
                    pc.invert(pc.match_substring_regex(array, _PLAIN_NUMBER)))
    return pc.if_else(risky, pc.binary_join_element_wise(pa.scalar(PREFIX, array.type), array, ""), array)


def neutralise_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Every string column of ``batch`` neutralised; the schema is unchanged."""
    return pa.RecordBatch.from_arrays([neutralise_array(c) for c in batch.columns], schema=batch.schema)
