from __future__ import annotations

from allo.social.replies import ReplyContext, compose, weight

LINK = "https://allo.example/chat?c=" + "x" * 180


def test_a_reply_names_the_problem_in_the_author_s_language() -> None:
    fr = compose(
        ReplyContext(acct="marie@m.example", language="fr", sub_intent="no_network", area="Lyon"), LINK
    )
    assert fr.startswith("@marie@m.example Bonjour")
    assert "réseau" in fr and "Lyon" in fr and LINK in fr
    en = compose(ReplyContext(acct="bob@m.example", language="en", sub_intent="double_charge"), LINK)
    assert en.startswith("@bob@m.example Hello") and "charged twice" in en and LINK in en
    other = compose(ReplyContext(acct="bob@m.example", language="en", sub_intent="slow_data"), LINK)
    assert other != en  # personal: not one sentence for everyone


def test_known_incident_legal_and_safety_lines() -> None:
    text = compose(
        ReplyContext(
            acct="a@b",
            language="fr",
            sub_intent="no_network",
            area="Cotonou",
            outage=True,
            incident_reference="INC-0007",
            legal=True,
            safety=True,
        ),
        LINK,
    )
    assert "INC-0007" in text and "112" in text and "sérieux" in text


def test_fits_the_server_limit_dropping_optional_sentences_first() -> None:
    context = ReplyContext(
        acct="someone-with-a-long-name@a-very-long-instance-name.example",
        language="fr",
        sub_intent="no_network",
        area="Abomey-Calavi",
        outage=True,
        legal=True,
        ticket_reference="T-000042",
    )
    full = compose(context, LINK)
    short = compose(context, LINK, max_characters=260)
    assert weight(short) <= 260 < weight(full)
    assert LINK in short and short.startswith("@someone-with-a-long-name")
    assert weight(full) <= 500
    assert weight("see https://example.com/" + "a" * 100) == len("see ") + 23
