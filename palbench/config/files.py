"""The one YAML reader of the configuration layer (protocols, params.yaml, ``--config`` files); torch-free."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from palbench.errors import ConfigError


def read_yaml(path: str | Path, missing: str = "not found", what: str = "a mapping") -> dict[str, Any]:
    """The mapping at the top of a YAML (or JSON) file.

    Args:
        path: the file.
        missing: the end of the error message when the file does not exist (what to do about it).
        what: what the mapping holds, for the error when the top level is not a mapping.

    Raises:
        ConfigError: one line naming the file: missing, unreadable, invalid YAML, or not a mapping.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {missing}")
    try:
        values = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected {what} at the top level")
    return values
