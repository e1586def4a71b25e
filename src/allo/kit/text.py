from __future__ import annotations

from allo.kit.errors import PayloadTooLarge, Unprocessable


def check_message_body(body: str, *, max_bytes: int) -> str:
    """A message body must be non-empty text of at most `max_bytes` once encoded in UTF-8."""
    size = len(body.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise PayloadTooLarge(
            f"The message body is {size} bytes; the limit is {max_bytes}.",
            code="message_too_large",
            details={"size": size, "limit": max_bytes},
        )
    try:
        body.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Unprocessable("The message body is not valid UTF-8 text.", code="invalid_text") from exc
    if not body.strip():
        raise Unprocessable("The message body is empty.", code="empty_message")
    if "\x00" in body:
        raise Unprocessable("The message body contains a NUL character.", code="invalid_text")
    return body


def one_line(text: str, limit: int) -> str:
    """The text on one line, cut to `limit` characters with an ellipsis: subjects, summaries, tables."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
