"""CSV exports that are safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime

from fastapi.responses import Response


def csv_cell(value: object) -> str:
    """A value as a CSV cell: "" for None, ISO 8601 for dates, an enum's value; a cell that a spreadsheet
    would run as a formula (starting with =, +, - or @) is quoted out with a leading apostrophe."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, datetime | date) else str(getattr(value, "value", value))
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def csv_text(header: Sequence[str], rows: Iterable[Iterable[object]]) -> str:
    """A CSV document: the header, then one line per row, every cell through csv_cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(csv_cell(value) for value in row)
    return buffer.getvalue()


def csv_response(text: str, filename: str) -> Response:
    """A CSV download."""
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
