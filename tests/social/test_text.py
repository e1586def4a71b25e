from __future__ import annotations

from allo.social.text import html_to_text

MASTODON_HTML = (
    '<p>Encore une panne <a href="https://m.example/tags/free" class="mention hashtag" rel="tag">'
    '#<span>Free</span></a> à Lyon !<br>Merci <span class="h-card">'
    '<a href="https://m.example/@sav" class="u-url mention">@<span>sav</span></a></span></p>'
    '<p>Voir <a href="https://downdetector.fr/statut/free-mobile/" rel="nofollow noopener" target="_blank">'
    '<span class="invisible">https://</span><span class="ellipsis">downdetector.fr/statut/fr</span>'
    '<span class="invisible">ee-mobile/</span></a> &amp; co</p>'
)


def test_a_status_reads_as_a_person_sees_it() -> None:
    assert html_to_text(MASTODON_HTML) == (
        "Encore une panne #Free à Lyon !\nMerci @sav\n\nVoir https://downdetector.fr/statut/free-mobile/ & co"
    )


def test_empty_broken_and_plain_input() -> None:
    assert html_to_text("") == ""
    assert html_to_text("plain text, no tags") == "plain text, no tags"
    assert html_to_text("<p>unclosed <b>bold") == "unclosed bold"
    assert html_to_text("<p>a</p><p></p><p></p><p>b</p>") == "a\n\nb"
    assert html_to_text("<script>x</script>") == "x"  # text only: nothing is ever executed or kept as markup
