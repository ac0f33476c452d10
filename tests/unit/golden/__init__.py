"""Golden files: expected outputs of builders and renderers, compared byte for byte.

`MODELWERK_UPDATE_GOLDEN=1 pytest tests/unit` rewrites them from the current code; review the
diff before committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def check_text(name: str, actual: str) -> None:
    path = HERE / name
    if os.environ.get("MODELWERK_UPDATE_GOLDEN") == "1":
        path.write_text(actual, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{name} differs from the golden file (see {path})"


def check_json(name: str, actual: Any) -> None:
    check_text(name, json.dumps(actual, indent=2, sort_keys=True) + "\n")
