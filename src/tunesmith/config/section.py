"""Base class of every config section: unknown keys are errors, assignments are validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def invalid(message: str) -> PydanticCustomError:
    """An option error whose message users read as is (no pydantic "Value error, " prefix)."""
    return PydanticCustomError("method_option", message)
