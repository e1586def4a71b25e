"""French and English UI text from the gettext catalogs in i18n/locales (compiled in memory at start)."""

from __future__ import annotations

import gettext
import io
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).parent / "locales"
SUPPORTED = ("fr", "en")
DEFAULT = "fr"


@cache
def translations(language: str) -> gettext.NullTranslations:
    po_path = LOCALES_DIR / language / "LC_MESSAGES" / "messages.po"
    if not po_path.is_file():
        return gettext.NullTranslations()
    with po_path.open("rb") as po_file:
        catalog = read_po(po_file, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def negotiate(explicit: str | None, accept_language: str | None) -> str:
    """The language asked for explicitly, else the first supported one in Accept-Language, else French."""
    if explicit in SUPPORTED:
        return explicit
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in SUPPORTED:
            return tag
    return DEFAULT


def N_(message: str) -> str:
    """Marks a string for the catalogs where it is defined; it is translated later, where it is shown."""
    return message


def gettext_for(language: str) -> Callable[..., str]:
    """`_("text %(name)s", name=…)` in `language`: the catalog's translation with its values filled in."""
    catalog = translations(language)

    def _(message: str, **values: Any) -> str:
        text = catalog.gettext(message)
        return text % values if values else text

    return _
