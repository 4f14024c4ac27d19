"""Policy section ``rules``: ordered matches on request facts and what they change."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import _NAME, _Strict, _compile
from .escalation import EscalationOverride

__all__ = ["RuleMatch", "RuleAction", "Rule"]


class RuleMatch(_Strict):
    """Conditions of a rule. Every condition given must hold (AND); a list matches when the
    request's value is any of its items (OR). An empty ``match`` matches every request."""

    keys: list[str] | None = Field(None, description="names of api_keys entries")
    groups: list[str] | None = Field(None, description="groups of api_keys entries")
    headers: dict[str, str] | None = Field(
        None, description="header name -> regular expression the whole value must match (names case-insensitive)"
    )
    metadata: dict[str, str] | None = Field(
        None, description="request metadata key -> regular expression the whole value must match"
    )
    models: list[str] | None = Field(None, description="the model the client asked for, before aliasing")
    last_user_regex: str | None = Field(
        None, description="regular expression searched in the last user turn (Python syntax; (?i) for case-insensitive)"
    )
    min_prompt_tokens: int | None = Field(
        None, ge=0, description="prompt tokens of all turns >= this (counted with the cloud model's tokenizer)")
    max_prompt_tokens: int | None = Field(None, ge=0, description="prompt tokens <= this")
    needs: list[Literal["vision", "tools", "json"]] | None = Field(
        None, description="the request needs any of these capabilities"
    )
    languages: list[str] | None = Field(
        None, description="ISO 639-1 code of the last user turn's language (py3langid), e.g. en, fr"
    )

    @field_validator("headers", mode="after")
    @classmethod
    def _lower_header_names(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else {k.lower(): v for k, v in value.items()}

    @field_validator("headers", "metadata", mode="after")
    @classmethod
    def _value_patterns_compile(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name, pattern in (value or {}).items():
            _compile(pattern, f"pattern for {name!r}")
        return value

    @field_validator("last_user_regex", mode="after")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            _compile(value, "last_user_regex")
        return value

    @field_validator("languages", mode="after")
    @classmethod
    def _language_codes(cls, value: list[str] | None) -> list[str] | None:
        for code in value or ():
            if not re.fullmatch(r"[a-z]{2,3}", code):
                raise ValueError(f"{code!r} is not an ISO 639 language code such as 'en' or 'fr'")
        return value

    @model_validator(mode="after")
    def _token_range(self) -> "RuleMatch":
        lo, hi = self.min_prompt_tokens, self.max_prompt_tokens
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_prompt_tokens ({lo}) is greater than max_prompt_tokens ({hi})")
        return self


class RuleAction(_Strict):
    """What a matching rule does (at least one field).

    Precedence among matching rules: ``forbid`` accumulates over all of them and always
    wins; the first rule that sets ``tier`` (resp. ``threshold``) wins over later ones;
    ``disable_escalation`` from any rule applies. ``escalation`` overrides are applied after
    the caller's overlay, field by field: the first matching rule that sets a field wins
    (``min``/``max`` merge per signal, first rule per signal wins); ``disable_escalation``
    still turns escalation off whatever an override says.
    """

    tier: str | None = Field(None, description="force this tier: no classifier, no escalation")
    forbid: list[str] = Field(
        default_factory=list, description="tiers never called for the request: not routed, escalated or fallen back to"
    )
    threshold: float | None = Field(None, ge=0, le=1, description="classifier threshold for the request")
    disable_escalation: bool = Field(False, description="keep the local answer whatever its check says")
    escalation: EscalationOverride | None = Field(
        None, description="escalation settings for matching requests (applied after the overlay; first rule per field wins)")

    @model_validator(mode="after")
    def _does_something(self) -> "RuleAction":
        if (self.tier is None and not self.forbid and self.threshold is None and not self.disable_escalation
                and self.escalation is None):
            raise ValueError("a rule action needs one of: tier, forbid, threshold, disable_escalation, escalation")
        return self


class Rule(_Strict):
    """A named routing rule, evaluated in file order before the classifier. Its name goes
    into ``x-router-reason``, ``x-router-rules`` and the log's ``rules`` column."""

    name: str = Field(pattern=_NAME, description="shown in x-router-reason and the log")
    match: RuleMatch = Field(default_factory=RuleMatch)
    action: RuleAction
