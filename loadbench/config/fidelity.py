"""A scenario's `fidelity` section: item variants sent on the same schedule, and contamination probes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BUILT_IN_VARIANTS = ("original", "choices_shuffled", "open_ended", "json_answer", "noise", "masked_option", "paraphrase")

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


PARAPHRASE_PROMPT = ("Rewrite the following question in different words, keeping its meaning and every detail needed to "
                     "answer it. Reply with the rewritten question only.\n\n{text}")


class Paraphraser(BaseModel):
    """The endpoint that rewrites each item once per run for the `paraphrase` variant."""

    model_config = ConfigDict(extra="forbid")
    sim: str | None = None
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    prompt: str = PARAPHRASE_PROMPT
    max_tokens: int = Field(512, ge=16, le=8192)
    timeout_s: float = Field(60.0, gt=0, le=600)
    max_concurrency: int = Field(4, ge=1, le=256)

    @field_validator("prompt")
    @classmethod
    def _has_text(cls, v: str) -> str:
        if "{text}" not in v:
            raise ValueError("the paraphrase prompt needs {text}")
        return v

    @field_validator("base_url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return v.rstrip("/") if v else v


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
    paraphrase: Paraphraser | None = None  # needed by the `paraphrase` variant

    @model_validator(mode="after")
    def _paraphraser(self) -> Fidelity:
        if "paraphrase" in self.variants and self.paraphrase is None:
            raise ValueError("the paraphrase variant needs fidelity.paraphrase: {sim: ...} or {base_url: ..., model: ...}")
        if self.paraphrase is not None and (self.paraphrase.sim is None) == (self.paraphrase.base_url is None):
            raise ValueError("give fidelity.paraphrase either base_url or sim")
        return self

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

__all__ = ["BUILT_IN_VARIANTS", "PARAPHRASE_PROMPT", "Fidelity", "Noise", "Paraphraser", "PublicScores"]
