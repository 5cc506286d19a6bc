"""The base of what services return."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Result(BaseModel):
    """A service's answer, in the shape the API shows it: the routers return it as it is, with
    ``response_model`` set to its class (or to a subclass that adds links), so each field is
    defined and described once. Frozen: a result is a fact, not a working copy."""

    model_config = ConfigDict(frozen=True, extra="forbid")
