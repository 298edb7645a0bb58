"""The models refuse every file under tests/data/invalid/ for the same field the API server
names (tests/integration/test_invalid_input.py applies them to the real one)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from placement.core.api import WorkloadPlacement
from tests.data.invalid_files import InvalidFile, invalid_files, refused_by_api_server

FILES = invalid_files()


def test_there_are_at_least_30_cases_the_api_server_refuses() -> None:
    assert len(refused_by_api_server()) >= 30


def _pydantic_path(location: tuple[int | str, ...]) -> str:
    # ("spec", "batch", "containers", 0, "name") -> spec.batch.containers[0].name, the way the
    # API server writes it.
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


@pytest.mark.parametrize("case", FILES, ids=[f.id for f in FILES])
def test_the_models_refuse_the_file_naming_the_same_field(case: InvalidFile) -> None:
    with pytest.raises(ValidationError) as raised:
        WorkloadPlacement.model_validate(case.manifest)
    errors = raised.value.errors()
    named = [
        e
        for e in errors
        # A field error is located at the field; a cross-field rule at its object, with the
        # field in its message (e.g. "batch.window.start and batch.window.end must differ").
        if _pydantic_path(e["loc"]).startswith(case.expect)
        or (
            case.expect.removeprefix("spec.") in e["msg"]
            and case.expect.startswith(_pydantic_path(e["loc"]))
        )
    ]
    assert named, f"{case.id}: no error names {case.expect}: {errors}"
