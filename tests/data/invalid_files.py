"""The invalid WorkloadPlacements under tests/data/invalid/ and what each must be refused for.

Each file starts with comments: `# expect: <field path>` (the field the error must name),
`# message: <fragment>` (part of the API server's message) and, for what the API server
cannot judge (the size of fields it passes through unknown), `# admitted: ...` (the operator
blocks it with InvalidSpec instead).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

INVALID_DIR = Path(__file__).parent / "invalid"
_HEADER = re.compile(r"^#\s*(expect|message|admitted):\s*(.*?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class InvalidFile:
    path: Path
    expect: str  # field path as the API server names it, e.g. spec.costs.retryRate
    message: str
    admitted: bool  # True: well-formed, so only the operator can refuse it

    @property
    def manifest(self) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load(self.path.read_text())
        return loaded

    @property
    def id(self) -> str:
        return self.path.stem


def invalid_files() -> list[InvalidFile]:
    found = []
    for path in sorted(INVALID_DIR.glob("*.yaml")):
        header = dict(_HEADER.findall(path.read_text()))
        if "expect" not in header:
            raise ValueError(f"{path.name} has no `# expect: <field path>` comment")
        found.append(
            InvalidFile(
                path,
                expect=header["expect"],
                message=header.get("message", ""),
                admitted="admitted" in header,
            )
        )
    return found


def refused_by_api_server() -> list[InvalidFile]:
    return [f for f in invalid_files() if not f.admitted]
