"""A run whose config has data.prepare trains on the prepared set, and a run without it points at data prepare."""

import json
from pathlib import Path

import pytest
from rich.console import Console

from tunesmith.errors import DataError


@pytest.mark.slow
def test_a_run_with_data_prepare_trains_on_the_prepared_set(tiny_run_config, write_jsonl, distinct_chats, workdir):
    from tunesmith.run import run

    chats = distinct_chats(20)
    write_jsonl("train.jsonl", chats + chats[:4] + ['{"messages": 1}'])  # 4 duplicates and one bad row
    config = tiny_run_config(data={"train": str(workdir / "train.jsonl"), "test": None, "validation_split": 0.5,
                                   "prepare": {"pii": {"enabled": False}, "split": {"validation": 2, "test": 2}}})
    console = Console(record=True, width=400)
    run(config, console=console)
    assert "| 16 train, 2 validation, 2 test examples |" in console.export_text()
    prepared = next((workdir / "cache" / "prepared").iterdir())
    manifest = json.loads((prepared / "prepared.json").read_text())
    assert manifest["counts"] == {"train": 16, "validation": 2, "test": 2, "rejected": 5}
    assert len(Path(prepared / "rejected.jsonl").read_text().splitlines()) == 5


def test_a_run_without_data_prepare_counts_the_repairs_its_data_needs(tiny_run_config, write_jsonl, make_chat, workdir):
    from tunesmith.data.splits import load_run_data

    trailing = {"messages": [*make_chat("q", "a")["messages"], {"role": "user", "content": "thanks"}]}
    write_jsonl("train.jsonl", [make_chat("q1", "a1"), trailing, trailing, make_chat("q2", "a2")])
    config = tiny_run_config(data={"train": str(workdir / "train.jsonl")})
    with pytest.raises(DataError) as caught:
        load_run_data(config.data)
    assert str(caught.value).splitlines()[0] == (
        f"{workdir / 'train.jsonl'}: 2 of 4 examples need a repair before training (ending on a user turn: 2); "
        f"`tunesmith data prepare {workdir / 'train.jsonl'} --out DIR` repairs them (trailing user turns trimmed, "
        "consecutive turns of one role merged), or set data.prepare in the config to prepare the data on every run"
    )
    config.data.prepare = {"pii": {"enabled": False}, "split": {"validation": 0, "test": 0}}
    assert len(load_run_data(config.data).train) == 3  # repaired, and the repaired twins deduplicated
