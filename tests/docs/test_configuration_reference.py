"""docs/configuration.md's table of settings is the code's (authsvc.config): every setting has one
row, no row names a setting that does not exist, and each default shown is the default in force."""

from __future__ import annotations

import dataclasses
import re
from enum import Enum
from pathlib import Path

import pytest

from authsvc import config

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
_ROW = re.compile(r"^\| (`APPROOV_[A-Z0-9_]+`(?:, `APPROOV_[A-Z0-9_]+`)*) \| ([^|]+) \|", re.M)
FIELDS = {field.name: field for field in dataclasses.fields(config.Settings)}
SETTINGS = {name: field for name, field, _ in config._FROM_ENV}


def documented() -> dict[str, str]:
    """Each setting the page's table names, with the default it shows."""
    rows: dict[str, str] = {}
    for names, default in _ROW.findall(PAGE.read_text()):
        for name in re.findall(r"APPROOV_[A-Z0-9_]+", names):
            assert name not in rows, f"{name} has two rows"
            rows[name] = default.strip().strip("`")
    return rows


def as_written(value: object) -> str:
    """A default as a user writes it in the environment."""
    if value is None or value in ((), ""):
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def test_every_setting_has_a_row_and_every_row_is_a_setting() -> None:
    assert sorted(documented()) == sorted(SETTINGS)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_the_default_shown_is_the_default_in_force(name: str) -> None:
    shown = documented()[name]
    if name in config.KEY_SETTINGS:
        assert shown in {"unset", "one key setting is required"}
        return
    field = FIELDS[SETTINGS[name]]
    assert shown == as_written(field.default)
