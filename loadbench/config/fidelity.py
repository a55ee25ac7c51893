"""A scenario's `fidelity` section: item variants sent on the same schedule, and contamination probes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

BUILT_IN_VARIANTS = ("original", "choices_shuffled", "open_ended", "json_answer", "noise", "masked_option")

# The multiple-choice rendering every variant with options starts from (documented in docs/fidelity.md).
MC_TEMPLATE = "{question}\n\n{options}\n\nAnswer with the letter of the correct option only."
OPEN_TEMPLATE = "{question}\n\nAnswer in a few words."
JSON_TEMPLATE = '{question}\n\n{options}\n\nAnswer in JSON as {{"answer": "<letter>"}}.'
MASKED_TEMPLATE = ("This multiple-choice question comes from a test set. One of its options is hidden as [MASK]. "
                   "Write the hidden option exactly as it appears in the test, and nothing else.\n\n{question}\n\n{options}")


class Noise(BaseModel):
    model_config = ConfigDict(extra="forbid")
    typo_rate: float = Field(0.03, ge=0, le=0.5)  # per word: swap two inner letters
    case_rate: float = Field(0.05, ge=0, le=1)  # per word: flip its case
    whitespace_rate: float = Field(0.05, ge=0, le=1)  # per gap: double the space


class Fidelity(BaseModel):
    """`fidelity: {variants: [...]}`: every item is sent once per variant that applies to it."""

    model_config = ConfigDict(extra="forbid")
    variants: list[str] = Field(default_factory=lambda: ["original"], min_length=1)
    mc_template: str = MC_TEMPLATE
    open_template: str = OPEN_TEMPLATE
    json_template: str = JSON_TEMPLATE
    masked_template: str = MASKED_TEMPLATE
    noise: Noise = Field(default_factory=Noise)
    seed: int | None = None  # default: the load's seed
    # A public-style set (e.g. your own MMLU-format subset) run in the same run, on the same schedule:
    # its accuracy is a public-style score measured on the same deployment under the same load.
    reference_dataset: str | None = None
    reference_name: str = Field("reference", min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.\-]+$")

    @field_validator("variants")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("a variant is listed twice")
        return names

    @field_validator("mc_template", "json_template", "masked_template")
    @classmethod
    def _placeholders(cls, text: str) -> str:
        if "{question}" not in text or "{options}" not in text:
            raise ValueError("a template with options needs {question} and {options}")
        return text


PublicScores = dict[str, float]
VariantName = Literal["original", "choices_shuffled", "open_ended", "json_answer", "noise", "masked_option"]

__all__ = ["BUILT_IN_VARIANTS", "Fidelity", "Noise", "PublicScores"]
