"""Guided diagnosis: trees stored as data, checked for soundness, walked answer by answer."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from allo.config import DEFAULT_DATA_DIR
from allo.demo.seed import load_trees
from allo.diagnosis.schemas import Answer, TreeDefinition
from allo.diagnosis.service import walk
from allo.kit.errors import Unprocessable
from tests.api_helpers import assert_api_error
from tests.factories import Actor


def _text(fr: str, en: str) -> dict[str, str]:
    return {"fr": fr, "en": en}


TREE: dict[str, Any] = {
    "start": "airplane",
    "nodes": {
        "airplane": {
            "question": _text("Le mode avion est-il activé ?", "Is airplane mode on?"),
            "options": [
                {"id": "yes", "label": _text("Oui", "Yes"), "next": "turn_off"},
                {"id": "no", "label": _text("Non", "No"), "next": "sim"},
            ],
        },
        "turn_off": {
            "solution": _text("Désactivez le mode avion.", "Turn airplane mode off."),
            "article": None,
        },
        "sim": {
            "question": _text("La carte SIM est-elle détectée ?", "Is the SIM detected?"),
            "options": [
                {"id": "yes", "label": _text("Oui", "Yes"), "next": "technician"},
                {"id": "no", "label": _text("Non", "No"), "next": "technician"},
            ],
        },
        "technician": {
            "escalate": {"team": "technical", "reason": "sim_or_network_fault", "priority": "P2"},
            "message": _text("Un technicien prend le relais.", "A technician takes over."),
        },
    },
}


def test_a_walk_reaches_a_solution_or_an_escalation_with_the_answers() -> None:
    definition = TreeDefinition.model_validate(TREE)
    first = walk(definition, [], "fr")
    assert (first.kind, first.text) == ("question", "Le mode avion est-il activé ?")
    assert [o.id for o in first.options] == ["yes", "no"]
    solved = walk(definition, [Answer(node="airplane", option="yes")], "fr")
    assert (solved.kind, solved.text) == ("solution", "Désactivez le mode avion.")
    escalated = walk(
        definition, [Answer(node="airplane", option="no"), Answer(node="sim", option="no")], "en"
    )
    assert (escalated.kind, escalated.team, escalated.priority) == ("escalation", "technical", "P2")
    assert [(a.question, a.answer) for a in escalated.answers] == [
        ("Is airplane mode on?", "No"),
        ("Is the SIM detected?", "No"),
    ]


def test_answers_that_do_not_fit_the_tree_are_refused() -> None:
    definition = TreeDefinition.model_validate(TREE)
    with pytest.raises(Unprocessable) as out_of_step:
        walk(definition, [Answer(node="sim", option="yes")], "fr")
    assert out_of_step.value.code == "diagnosis_out_of_step"
    with pytest.raises(Unprocessable) as unknown:
        walk(definition, [Answer(node="airplane", option="maybe")], "fr")
    assert unknown.value.code == "unknown_option"
    with pytest.raises(Unprocessable):  # nothing to answer after a leaf
        walk(definition, [Answer(node="airplane", option="yes"), Answer(node="turn_off", option="yes")], "fr")


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda t: t["nodes"]["sim"]["options"][0].update(next="nowhere"), "unknown node"),
        (lambda t: t["nodes"]["sim"]["options"][0].update(next="airplane"), "cycle"),
        (lambda t: t["nodes"].update(orphan=copy.deepcopy(t["nodes"]["turn_off"])), "not reachable"),
        (lambda t: t["nodes"]["sim"]["options"][1].update(id="yes"), "repeat"),
        (lambda t: t.update(start="missing"), "start node"),
        (lambda t: t["nodes"]["turn_off"].update(extra=1), "extra"),
    ],
)
def test_unsound_trees_are_refused(breakage: Any, message: str) -> None:
    broken = copy.deepcopy(TREE)
    breakage(broken)
    with pytest.raises(ValidationError, match=message):
        TreeDefinition.model_validate(broken)


def test_the_demo_trees_are_sound_and_cover_the_main_problems() -> None:
    trees = load_trees(DEFAULT_DATA_DIR)
    covered = {s for tree in trees for s in tree["sub_intents"]}
    assert {"no_network", "slow_data", "no_data", "calls_failing", "voicemail"} <= covered
    for tree in trees:
        definition = TreeDefinition.model_validate({"start": tree["start"], "nodes": tree["nodes"]})
        assert walk(definition, [], "fr").kind == "question"


API = "/api/v1/diagnosis/trees"


def _body(key: str = "no-network-test") -> dict[str, Any]:
    return {
        "key": key,
        "sub_intents": ["no_network"],
        "title": _text("Pas de réseau", "No network"),
        "definition": TREE,
    }


async def test_trees_through_the_api(
    client: httpx.AsyncClient, tenant_actors: dict[str, Actor], other_tenant_admin: Actor
) -> None:
    supervisor, agent = tenant_actors["supervisor"], tenant_actors["agent"]
    assert_api_error(await client.post(API, json=_body(), headers=agent.bearer), 403, "insufficient_role")
    created = await client.post(API, json=_body(), headers=supervisor.bearer)
    assert created.status_code == 201, created.text
    assert_api_error(await client.post(API, json=_body(), headers=supervisor.bearer), 409, "tree_exists")
    broken = _body("broken")
    broken["definition"] = {**TREE, "start": "missing"}
    assert_api_error(await client.post(API, json=broken, headers=supervisor.bearer), 422)

    step = await client.post(
        f"{API}/no-network-test/walk",
        json={"language": "en", "answers": [{"node": "airplane", "option": "no"}]},
        headers=agent.bearer,
    )
    assert step.status_code == 200, step.text
    assert step.json()["kind"] == "question" and step.json()["text"] == "Is the SIM detected?"
    wrong = await client.post(
        f"{API}/no-network-test/walk",
        json={"answers": [{"node": "sim", "option": "no"}]},
        headers=agent.bearer,
    )
    assert_api_error(wrong, 422, "diagnosis_out_of_step")

    assert_api_error(await client.get(f"{API}/no-network-test", headers=other_tenant_admin.bearer), 404)
    patched = await client.patch(
        f"{API}/no-network-test", json={"published": False}, headers=supervisor.bearer
    )
    assert patched.status_code == 200 and patched.json()["published"] is False
    assert (await client.delete(f"{API}/no-network-test", headers=supervisor.bearer)).status_code == 204
    assert_api_error(await client.get(f"{API}/no-network-test", headers=agent.bearer), 404)
