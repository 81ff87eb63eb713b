"""The base of every params.yaml schema: frozen, and an unknown key is an error (a misspelling never passes)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
