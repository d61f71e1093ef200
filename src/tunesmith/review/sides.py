"""Which side (A or B) shows the tuned answer, and what a reviewer's choice of side means.

The rule is a hash of (seed, item, reviewer), not Python's `hash` (salted per process) or a random draw: the same
reviewer sees the same layout after a server restart, different reviewers see independent layouts, and nobody can tell
from the position which answer is tuned.
"""

from __future__ import annotations

import hashlib

SIDES = ("A", "B")
CHOICES = ("A", "B", "tie")
SEED = 0


def tuned_side(item_id: int, reviewer: str, seed: int = SEED) -> str:
    digest = hashlib.sha256(f"{seed}\x1f{item_id}\x1f{reviewer}".encode("utf-8")).digest()
    return SIDES[digest[0] & 1]


def winner_of(choice: str, tuned_on: str) -> str:
    """The un-shuffled meaning of a choice: "tuned", "baseline" or "tie"."""
    if choice == "tie":
        return "tie"
    return "tuned" if choice == tuned_on else "baseline"


def choice_for(winner: str, tuned_on: str) -> str:
    """The side a reviewer clicked to mean `winner` (the inverse of winner_of), to show a saved vote again."""
    if winner == "tie":
        return "tie"
    baseline_on = SIDES[1 - SIDES.index(tuned_on)]
    return tuned_on if winner == "tuned" else baseline_on
