"""Base class of every config section: unknown keys are errors, assignments are validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError, WrapValidator
from pydantic_core import PydanticCustomError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def invalid(message: str) -> PydanticCustomError:
    """An option error whose message users read as is (no pydantic "Value error, " prefix)."""
    return PydanticCustomError("method_option", message)


def one_error(message: str) -> WrapValidator:
    """For a union type: one error in the user's words instead of pydantic's one-per-union-member list."""
    def validate(value, handler):
        try:
            return handler(value)
        except ValidationError:
            raise invalid(message) from None

    return WrapValidator(validate)
