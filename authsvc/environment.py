"""Where settings come from: `.env` in the working directory, overridden by the environment."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values


def load_environment(env_file: Path = Path(".env")) -> dict[str, str]:
    """`.env` from the working directory, overridden by the real environment."""
    from_file = dotenv_values(env_file) if env_file.is_file() else {}
    merged = {key: value for key, value in from_file.items() if value is not None}
    merged.update(os.environ)
    return merged
