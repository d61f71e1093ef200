"""Votes as an append-only JSON Lines log in the run folder: RUN_DIR/review/votes.jsonl.

Each vote is one line, written with a single O_APPEND write and fsync'd, so a crash or a restart never loses a saved
vote and never interleaves two. A re-vote is appended too; the latest line per (baseline, item, reviewer) is the one
counted, so the log keeps the history of changed minds.
"""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import datetime, timezone
from pathlib import Path

from tunesmith.errors import DataError, TunesmithError
from tunesmith.evaluate.row_names import BASELINES

VOTES_FILE = Path("review") / "votes.jsonl"
WINNERS = ("tuned", "baseline", "tie")
MAX_COMMENT = 2000
_REVIEWER = re.compile(r"[\w][\w .'-]{0,59}")


def normalise_reviewer(name: str) -> str:
    """The reviewer's name as their identity: surrounding and repeated whitespace removed; letters, digits, . _ ' -."""
    cleaned = " ".join(name.split())
    if not _REVIEWER.fullmatch(cleaned):
        raise TunesmithError(
            f"reviewer name {name!r}: use 1 to 60 letters, digits, spaces or . _ ' - (starting with a letter or digit)"
        )
    return cleaned


def new_vote(*, against: str, item_id: int, fingerprint: str, reviewer: str, choice: str, tuned_side: str,
             winner: str, comment: str) -> dict:
    if len(comment) > MAX_COMMENT:
        raise TunesmithError(f"comment: at most {MAX_COMMENT} characters, got {len(comment)}")
    return {
        "against": against, "item": item_id, "fingerprint": fingerprint, "reviewer": reviewer,
        "choice": choice, "tuned_side": tuned_side, "winner": winner, "comment": comment.strip(),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _check(record, where: str) -> dict:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object per line")
    if not isinstance(record.get("item"), int) or not isinstance(record.get("reviewer"), str):
        raise DataError(f"{where}: a vote needs an integer 'item' and a 'reviewer' string")
    if not _REVIEWER.fullmatch(record["reviewer"]):
        raise DataError(f"{where}: reviewer {record['reviewer']!r} is not a name the review page accepts")
    if record.get("winner") not in WINNERS:
        raise DataError(f"{where}: 'winner' must be one of {', '.join(WINNERS)}, got {record.get('winner')!r}")
    if not isinstance(record.get("comment", ""), str):
        raise DataError(f"{where}: 'comment' must be a string")
    if not isinstance(record.get("against"), str):
        raise DataError(f"{where}: 'against' must name the baseline ({', '.join(BASELINES)})")
    return record


class VoteStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def append(self, vote: dict) -> None:
        line = (json.dumps(vote, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                data = _tail_fix(fd) + line
                while data:
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            finally:
                os.close(fd)

    def read(self) -> list[dict]:
        """Every vote in the log, oldest first."""
        if not self.path.is_file():
            return []
        text = self.path.read_text(encoding="utf-8")
        lines = text.split("\n")
        votes = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                if number == len(lines):  # the unterminated last line: a write cut short by a crash, never a vote
                    continue
                raise DataError(f"{self.path}:{number}: invalid JSON ({exc.msg})") from None
            votes.append(_check(record, f"{self.path}:{number}"))
        return votes


def _tail_fix(fd: int) -> bytes:
    """Make the log end at a line boundary before appending; return what to write first.

    A last line without its newline is either a hand edit (valid JSON: keep it, write the newline) or a write cut short
    by a crash (cut it off: it never was a vote).
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return b""
    data = os.pread(fd, size, 0)
    tail = data[data.rfind(b"\n") + 1:]
    try:
        json.loads(tail)
    except ValueError:
        os.ftruncate(fd, size - len(tail))
        return b""
    return b"\n"


def latest_votes(votes: list[dict], against: str) -> dict[tuple[int, str], dict]:
    """The vote that counts for each (item, reviewer) against one baseline: the last one cast."""
    return {(vote["item"], vote["reviewer"]): vote for vote in votes if vote["against"] == against}
