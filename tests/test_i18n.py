"""Every UI string is in the catalogs, translated into French and English."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from allo.i18n import LOCALES_DIR, SUPPORTED, negotiate, translations

ROOT = Path(__file__).resolve().parent.parent


def _ids(path: Path, locale: str | None = None) -> dict[str, str]:
    with path.open("rb") as f:
        catalog = read_po(f, locale=locale)
    return {str(m.id): str(m.string) for m in catalog if m.id}


def test_the_template_lists_every_string_of_the_sources(tmp_path: Path) -> None:
    fresh = tmp_path / "messages.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", "-k", "_", "-k", "N_",
         "--no-location", "-o", str(fresh), "src"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )  # fmt: skip
    assert set(_ids(fresh)) == set(_ids(LOCALES_DIR / "messages.pot")), "run `make i18n` and translate"


def test_every_string_is_translated_in_every_language() -> None:
    expected = set(_ids(LOCALES_DIR / "messages.pot"))
    for language in SUPPORTED:
        catalog = _ids(LOCALES_DIR / language / "LC_MESSAGES" / "messages.po", language)
        assert set(catalog) == expected, language
        assert [msgid for msgid, text in catalog.items() if not text] == [], language


def test_translations_and_negotiation() -> None:
    assert translations("fr").gettext("Sign in") == "Se connecter"
    assert translations("en").gettext("Sign in") == "Sign in"
    assert negotiate(None, "en-US,en;q=0.9,fr;q=0.8") == "en"
    assert negotiate("fr", "en") == "fr"
    assert negotiate("de", "de-DE") == "fr"
    assert negotiate(None, None) == "fr"
