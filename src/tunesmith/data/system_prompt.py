"""The system message a chat run was trained with, so generation and chat can reuse it by default."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tunesmith.data.formats import Example

FILE = "prompting.json"


def training_system_prompt(examples: list[Example]) -> str | None:
    """The most common system message of the training conversations, or None when they have none."""
    systems = [e.messages[0]["content"] for e in examples if e.messages and e.messages[0]["role"] == "system"]
    return Counter(systems).most_common(1)[0][0] if systems else None


def save_system_prompt(run_dir: Path, system: str | None) -> None:
    (run_dir / FILE).write_text(json.dumps({"system": system}))


def load_system_prompt(run_dir: Path) -> str | None:
    path = Path(run_dir) / FILE
    return json.loads(path.read_text())["system"] if path.is_file() else None
