import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from services.contacts.pipelines.models import StageKind

Slug = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$", examples=["negotiation"])]
_MAX_STAGES = 50


class StageIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    key: Slug = Field(description="Names the stage for ever: deals refer to it. `a-z`, `0-9`, `_`.")
    label: str = Field(min_length=1, max_length=200, examples=["Negotiation"])
    probability: int = Field(
        ge=0, le=100, description="Chance, in percent, that a deal in this stage is won. Won: 100; lost: 0."
    )
    kind: StageKind = Field(
        StageKind.OPEN, description="`open`, or the pipeline's one `won` or `lost` stage."
    )


def _well_formed(stages: list[StageIn]) -> list[StageIn]:
    """Keys unique; one won and one lost stage with their probabilities; at least one open stage."""
    keys = [stage.key for stage in stages]
    if duplicates := sorted({key for key in keys if keys.count(key) > 1}):
        raise ValueError(f"stage keys must be unique; repeated: {', '.join(duplicates)}")
    for kind, certain in ((StageKind.WON, 100), (StageKind.LOST, 0)):
        of_kind = [stage for stage in stages if stage.kind is kind]
        if len(of_kind) != 1:
            raise ValueError(f"a pipeline has exactly one {kind} stage, not {len(of_kind)}")
        if of_kind[0].probability != certain:
            raise ValueError(f"the {kind} stage's probability is {certain}")
    if not any(stage.kind is StageKind.OPEN for stage in stages):
        raise ValueError("a pipeline needs at least one open stage")
    return stages


Stages = Annotated[
    list[StageIn],
    Field(
        min_length=3,
        max_length=_MAX_STAGES,
        description="In order. Exactly one `won` (probability 100) and one `lost` (probability 0) stage, "
        "and at least one `open` one; keys unique.",
    ),
]

_EXAMPLE_STAGES: list[JsonValue] = [
    {"key": "discovery", "label": "Discovery", "probability": 20},
    {"key": "trial", "label": "Trial", "probability": 50},
    {"key": "signed", "label": "Signed", "probability": 100, "kind": "won"},
    {"key": "churned", "label": "Not renewed", "probability": 0, "kind": "lost"},
]


class PipelineCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"key": "renewals", "name": "Renewals", "stages": _EXAMPLE_STAGES}]},
    )

    key: Slug = Field(description="Unique; `sales` is the default pipeline's.")
    name: str = Field(min_length=1, max_length=200)
    stages: Stages

    @field_validator("stages")
    @classmethod
    def _stages_well_formed(cls, stages: list[StageIn]) -> list[StageIn]:
        return _well_formed(stages)


class PipelinePatch(BaseModel):
    """A merge patch: `name`, and/or the full new list of `stages`, matched to the current ones by key."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"name": "Renewals (EMEA)", "stages": _EXAMPLE_STAGES[::-1]}]},
    )

    name: str | None = Field(None, min_length=1, max_length=200, description="Cannot be cleared.")
    stages: Stages | None = Field(
        None,
        description="The stages as they are to be, in order: a new key adds a stage, a key left out "
        "removes one (409 while deals are in it), the rest are relabelled and reordered as given.",
    )

    @field_validator("name", "stages", mode="before")
    @classmethod
    def _not_cleared(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be null; leave it out to keep it")
        return value

    @field_validator("stages")
    @classmethod
    def _stages_well_formed(cls, stages: list[StageIn] | None) -> list[StageIn] | None:
        return None if stages is None else _well_formed(stages)


class StageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key: str
    label: str
    order: int = Field(validation_alias="position", description="1 for the first stage.")
    probability: int
    kind: StageKind


class PipelineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    key: str
    name: str
    stages: list[StageRead]
    created_at: datetime
    updated_at: datetime
