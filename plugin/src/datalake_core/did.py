"""A Rucio data identifier (scope:name), the key every layer of the core speaks in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Did:
    scope: str
    name: str

    def __str__(self) -> str:
        return f"{self.scope}:{self.name}"

    def as_dict(self) -> dict[str, str]:
        return {"scope": self.scope, "name": self.name}
