from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from allo.kit.schemas import ReadModel, StrictInput

NodeId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,60}$")]
TreeKey = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,79}$")]
MAX_DEPTH = 12


class Text(BaseModel):
    """A sentence in French and English (French first: it is the default language)."""

    model_config = ConfigDict(extra="forbid")

    fr: str = Field(min_length=1, max_length=2000)
    en: str = Field(min_length=1, max_length=2000)

    def get(self, language: str) -> str:
        return self.en if language == "en" else self.fr


class Option(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: NodeId
    label: Text
    next: NodeId


class QuestionNode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: Text
    options: list[Option] = Field(min_length=2, max_length=6)


class SolutionNode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    solution: Text
    article: str | None = None


class Escalation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    team: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,40}$")]
    reason: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,60}$")]
    priority: Literal["P1", "P2", "P3", "P4"] = "P3"


class EscalationNode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    escalate: Escalation
    message: Text


Node = QuestionNode | SolutionNode | EscalationNode


class TreeDefinition(BaseModel):
    """Questions lead to other nodes; every path ends in a solution or an escalation."""

    model_config = ConfigDict(extra="forbid")

    start: NodeId
    nodes: dict[NodeId, Node] = Field(min_length=2, max_length=200)

    @model_validator(mode="after")
    def _a_sound_tree(self) -> TreeDefinition:
        if self.start not in self.nodes:
            raise ValueError(f"start node {self.start!r} does not exist")
        for node_id, node in self.nodes.items():
            if isinstance(node, QuestionNode):
                ids = [o.id for o in node.options]
                if len(ids) != len(set(ids)):
                    raise ValueError(f"{node_id}: option ids repeat")
                for option in node.options:
                    if option.next not in self.nodes:
                        raise ValueError(
                            f"{node_id}: option {option.id!r} leads to unknown node {option.next!r}"
                        )
        reached: set[str] = set()

        def walk(node_id: str, path: tuple[str, ...]) -> None:
            if node_id in path:
                raise ValueError(f"cycle through {node_id!r}")
            if len(path) > MAX_DEPTH:
                raise ValueError(f"a path is deeper than {MAX_DEPTH} questions")
            reached.add(node_id)
            node = self.nodes[node_id]
            if isinstance(node, QuestionNode):
                for option in node.options:
                    walk(option.next, (*path, node_id))

        walk(self.start, ())
        unreachable = sorted(set(self.nodes) - reached)
        if unreachable:
            raise ValueError(f"nodes not reachable from the start: {unreachable}")
        return self


class TreeCreate(StrictInput):
    key: TreeKey
    sub_intents: list[Annotated[str, StringConstraints(pattern=r"^[a-z_]{2,40}$")]] = Field(max_length=20)
    title: Text
    definition: TreeDefinition
    published: bool = True


class TreeUpdate(StrictInput):
    sub_intents: list[Annotated[str, StringConstraints(pattern=r"^[a-z_]{2,40}$")]] | None = None
    title: Text | None = None
    definition: TreeDefinition | None = None
    published: bool | None = None


class TreeRead(ReadModel):
    id: uuid.UUID
    key: str
    sub_intents: list[str]
    title: dict[str, Any]
    definition: dict[str, Any]
    published: bool
    created_at: datetime
    updated_at: datetime


class Answer(StrictInput):
    node: NodeId
    option: NodeId


class WalkRequest(StrictInput):
    language: Literal["fr", "en"] = "fr"
    answers: list[Answer] = Field(default_factory=list, max_length=MAX_DEPTH)


class StepOption(BaseModel):
    id: str
    label: str


class CollectedAnswer(BaseModel):
    node: str
    question: str
    option: str
    answer: str


class Step(BaseModel):
    """Where a diagnosis stands: the next question, or its end (a solution or an escalation)."""

    kind: Literal["question", "solution", "escalation"]
    node: str
    text: str
    options: list[StepOption] = Field(default_factory=list)
    article: str | None = None
    team: str | None = None
    reason: str | None = None
    priority: str | None = None
    answers: list[CollectedAnswer] = Field(default_factory=list)
