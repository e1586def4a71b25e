"""Walking a diagnosis tree: from the answers given so far to the next step."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from allo.audit.service import record_by
from allo.auth.principal import Principal
from allo.diagnosis.schemas import (
    Answer,
    CollectedAnswer,
    EscalationNode,
    QuestionNode,
    SolutionNode,
    Step,
    StepOption,
    TreeCreate,
    TreeDefinition,
    TreeUpdate,
)
from allo.kit.db import flush_or_conflict
from allo.kit.errors import NotFound, Unprocessable
from allo.kit.repository import TenantRepository
from allo.models import DiagnosisTree


class TreeRepository(TenantRepository[DiagnosisTree]):
    model = DiagnosisTree
    noun = "diagnosis tree"

    async def find_by_key(self, key: str) -> DiagnosisTree | None:
        stmt = self.select().where(DiagnosisTree.key == key)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_key(self, key: str) -> DiagnosisTree:
        tree = await self.find_by_key(key)
        if tree is None:
            raise NotFound(f"Diagnosis tree {key!r} not found.", details={"key": key})
        return tree

    async def for_sub_intent(self, sub_intent: str) -> DiagnosisTree | None:
        """The published tree that diagnoses this sub-intent (the first by key when several do)."""
        stmt = self.select().where(DiagnosisTree.published.is_(True)).order_by(DiagnosisTree.key)
        for tree in (await self.session.execute(stmt)).scalars():
            if sub_intent in tree.sub_intents:
                return tree
        return None


def walk(definition: TreeDefinition, answers: Sequence[Answer], language: str) -> Step:
    """Replay the answers from the start; an answer that does not fit the tree is an error, not a guess."""
    node_id = definition.start
    collected: list[CollectedAnswer] = []
    for answer in answers:
        node = definition.nodes[node_id]
        if not isinstance(node, QuestionNode) or answer.node != node_id:
            raise Unprocessable(
                f"The answer to {answer.node!r} does not follow the diagnosis (expected {node_id!r}).",
                code="diagnosis_out_of_step",
                details={"expected": node_id, "got": answer.node},
            )
        option = next((o for o in node.options if o.id == answer.option), None)
        if option is None:
            raise Unprocessable(
                f"{answer.option!r} is not an answer to {node_id!r}.",
                code="unknown_option",
                details={"node": node_id, "options": [o.id for o in node.options]},
            )
        collected.append(
            CollectedAnswer(
                node=node_id,
                question=node.question.get(language),
                option=option.id,
                answer=option.label.get(language),
            )
        )
        node_id = option.next
    node = definition.nodes[node_id]
    if isinstance(node, QuestionNode):
        return Step(
            kind="question",
            node=node_id,
            text=node.question.get(language),
            options=[StepOption(id=o.id, label=o.label.get(language)) for o in node.options],
            answers=collected,
        )
    if isinstance(node, SolutionNode):
        return Step(
            kind="solution",
            node=node_id,
            text=node.solution.get(language),
            article=node.article,
            answers=collected,
        )
    assert isinstance(node, EscalationNode)
    return Step(
        kind="escalation",
        node=node_id,
        text=node.message.get(language),
        team=node.escalate.team,
        reason=node.escalate.reason,
        priority=node.escalate.priority,
        answers=collected,
    )


async def create_tree(session: AsyncSession, principal: Principal, data: TreeCreate) -> DiagnosisTree:
    tree = TreeRepository(session, principal.tenant_id).add(
        DiagnosisTree(
            key=data.key,
            sub_intents=data.sub_intents,
            title=data.title.model_dump(),
            definition=data.definition.model_dump(mode="json"),
            published=data.published,
        )
    )
    await flush_or_conflict(session, f"A diagnosis tree {data.key!r} already exists.", code="tree_exists")
    await record_by(session, principal, "diagnosis_tree.create", "diagnosis_tree", tree.id, {"key": data.key})
    return tree


async def update_tree(
    session: AsyncSession, principal: Principal, key: str, data: TreeUpdate
) -> DiagnosisTree:
    tree = await TreeRepository(session, principal.tenant_id).by_key(key)
    if data.sub_intents is not None:
        tree.sub_intents = data.sub_intents
    if data.title is not None:
        tree.title = data.title.model_dump()
    if data.definition is not None:
        tree.definition = data.definition.model_dump(mode="json")
    if data.published is not None:
        tree.published = data.published
    await session.flush()
    await record_by(
        session,
        principal,
        "diagnosis_tree.update",
        "diagnosis_tree",
        tree.id,
        {"fields": sorted(data.model_fields_set)},
    )
    return tree


async def delete_tree(session: AsyncSession, principal: Principal, key: str) -> uuid.UUID:
    tree = await TreeRepository(session, principal.tenant_id).by_key(key)
    await session.delete(tree)
    await record_by(session, principal, "diagnosis_tree.delete", "diagnosis_tree", tree.id, {"key": key})
    return tree.id


def definition_of(tree: DiagnosisTree) -> TreeDefinition:
    return TreeDefinition.model_validate(tree.definition)
