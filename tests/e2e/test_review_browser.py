"""The blind review round trip in real headless Chromium: name, three votes, server restart, tally."""

import json
import queue
import signal
import subprocess
import sys
import threading

import pytest

ATTACK = '<img src=x onerror="document.title=\'pwned\'">'


def write_run(run_dir):
    (run_dir / "eval").mkdir(parents=True)
    with open(run_dir / "eval" / "examples.jsonl", "w") as handle:
        for i in range(4):
            prompt = f"question {i} {ATTACK}" if i == 1 else f"question {i}"
            answers = {name: f"{name} answer {i}" for name in ("zero_shot", "few_shot", "tuned")}
            row = {"id": i, "prompt": prompt, "reference": "", "answers": answers, "scores": {}}
            handle.write(json.dumps(row) + "\n")


class ReviewServer:
    """`tunesmith review RUN --port 0` in a subprocess; the URL is read from what it prints."""

    def __init__(self, run_dir):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tunesmith", "review", str(run_dir), "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.process.stdout], daemon=True).start()
        seen = []
        while True:
            line = lines.get(timeout=120)
            seen.append(line)
            if line.startswith("review page: "):
                self.url = line.split()[2]
                return
            assert self.process.poll() is None, "".join(seen)

    def stop(self):
        self.process.terminate()
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status says how it ended.
        assert self.process.wait(timeout=30) in (0, -signal.SIGTERM)


def vote(page, pick, comment=""):
    """Vote on the item shown: pick is "tuned", "baseline" or "tie", translated to the side the page shows it on."""
    sides = {side: page.inner_text(f"#answer-{side}") for side in ("A", "B")}
    tuned_on = next(side for side, text in sides.items() if text.startswith("tuned answer"))
    label = {"tuned": f"{tuned_on} better", "baseline": f"{'B' if tuned_on == 'A' else 'A'} better", "tie": "Tie"}
    page.get_by_label(label[pick], exact=True).check()
    if comment:
        page.fill("#comment", comment)
    with page.expect_navigation():
        page.click("text=Save vote")


@pytest.mark.slow
def test_vote_on_three_items_restart_and_see_the_tally(tmp_path, browser):
    run_dir = tmp_path / "run"
    write_run(run_dir)
    page = browser.new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    server = ReviewServer(run_dir)
    try:
        page.goto(server.url)
        page.fill("#reviewer", "Ana")
        with page.expect_navigation():
            page.click("text=Start reviewing")
        assert page.inner_text("#prompt") == "question 0"
        vote(page, "tuned")
        assert page.inner_text("#prompt") == f"question 1 {ATTACK}"  # markup shown as text, never run
        assert page.title() != "pwned" and page.locator("img").count() == 0
        vote(page, "tuned", comment="<b>clearer</b> steps")
        vote(page, "tie")
        assert page.inner_text("#prompt") == "question 3"
    finally:
        server.stop()

    restarted = ReviewServer(run_dir)
    try:
        page.goto(restarted.url + "tally")
        assert page.inner_text("#votes") == "3"
        assert page.inner_text("#win-rate") == "83%"  # (1 + 1 + 1/2) / 3 items, ties count half
        assert page.inner_text("#ci") == "31% – 98%"  # Wilson score interval for 2.5 of 3
        assert "Ana" in page.inner_text("#reviewers") and "3" in page.inner_text("#reviewers")
        assert "<b>clearer</b> steps" in page.inner_text("#comments")
        page.goto(restarted.url + "?reviewer=Ana")  # the saved votes send Ana to the one item left
        assert page.inner_text("#prompt") == "question 3"
    finally:
        restarted.stop()
    assert dialogs == []
    summary = json.loads((run_dir / "review" / "summary.json").read_text())["few_shot"]
    assert (summary["votes"], summary["outcomes"]) == (3, {"tuned": 2, "baseline": 0, "tie": 1})
