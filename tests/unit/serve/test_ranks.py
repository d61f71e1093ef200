"""How a multi-process job ended, from its ranks' exit statuses and the failures they wrote down: the first real
failure names the job's error, not the broken collectives and the SIGTERMs that followed it."""

import json
import signal

from tunesmith.serve import ranks
from tunesmith.serve.exits import EXIT_INTERRUPTED, EXIT_LOST, EXIT_RANK_FAILED
from tunesmith.serve.ranks import verdict
from tunesmith.train.launch import RankFailure


def record(rank, time, message, code="training_error"):
    return {"rank": rank, "time": time, "code": code, "message": message}


def test_all_ranks_succeeding_settle_nothing():
    assert verdict([], {}, 2) == ranks.Verdict(0)


def test_a_rank_that_died_silently_is_the_cause_even_when_another_wrote_an_error_first():
    exits = [RankFailure(0, EXIT_RANK_FAILED, 100.0), RankFailure(1, -signal.SIGKILL, 100.0)]
    found = verdict(exits, {0: record(0, 99.5, "RuntimeError: gloo connection closed by peer")}, 2)
    assert found.exit_code == 0
    assert found.error["code"] == "training_process_crashed"
    assert found.error["message"].startswith("rank 1 of 2: the training process ended with signal SIGKILL")


def test_a_rank_killed_while_the_launcher_saw_another_end_first_is_still_the_cause():
    exits = [RankFailure(0, EXIT_RANK_FAILED, 100.0), RankFailure(1, None, None)]  # rank 1 wrote no ending
    found = verdict(exits, {0: record(0, 99.5, "RuntimeError: gloo connection closed by peer")}, 2)
    assert found.error["code"] == "training_process_crashed"
    message = found.error["message"]
    assert message.startswith("rank 1 of 2: the training process ended with a signal it could not report")


def test_the_first_written_failure_names_the_job_error():
    exits = [RankFailure(0, EXIT_RANK_FAILED, 100.0), RankFailure(1, EXIT_RANK_FAILED, 100.0),
             RankFailure(2, -signal.SIGTERM, 101.0)]  # stopped by torchrun once the others failed
    written = {0: record(0, 12.3, "RuntimeError: connection reset"), 1: record(1, 12.1, "data.max_length: too big")}
    assert verdict(exits, written, 3).error == {"code": "training_error", "message": "rank 1 of 3: data.max_length: "
                                                                                     "too big", "param": None}


def test_a_lost_claim_wins_and_ranks_stopped_at_a_checkpoint_are_resumable():
    assert verdict([RankFailure(0, EXIT_LOST, 1.0), RankFailure(1, -signal.SIGTERM, 1.0)], {}, 2).exit_code == EXIT_LOST
    stopped = verdict([RankFailure(0, EXIT_INTERRUPTED, 1.0), RankFailure(1, EXIT_INTERRUPTED, 1.0)], {}, 2)
    assert stopped == ranks.Verdict(EXIT_INTERRUPTED)


def test_each_rank_writes_its_own_failure_and_a_new_attempt_starts_clean(tmp_path, monkeypatch):
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        ranks.record_failure(tmp_path, "ftjob-1", "internal_error", f"failed on {rank}")
    found = ranks.recorded_failures(tmp_path, "ftjob-1", 2)
    assert [found[r]["message"] for r in (0, 1)] == ["failed on 0", "failed on 1"]
    assert json.loads((tmp_path / "ftjob-1.rank1.json").read_text())["rank"] == 1
    ranks.clear_failures(tmp_path, "ftjob-1", 2)
    assert ranks.recorded_failures(tmp_path, "ftjob-1", 2) == {}
