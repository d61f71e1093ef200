"""The review pages through FastAPI's TestClient: blind sides, votes that mean what was clicked, escaping, restarts."""

import re

import pytest
from fastapi.testclient import TestClient

from tunesmith.review.app import create_app
from tunesmith.review.sides import tuned_side
from tunesmith.review.votes import VoteStore

from .test_items import example, write_examples

ATTACK = '<script>document.title="pwned"</script><img src=x onerror=alert(1)>'


@pytest.fixture
def run_dir(tmp_path):
    rows = [example(i, zero_shot=f"zero {i}", few_shot=f"few {i}", tuned=f"tuned {i}") for i in range(4)]
    rows[2] = {**rows[2], "prompt": f"prompt {ATTACK}", "answers": {"few_shot": f"few {ATTACK}", "tuned": "tuned 2"}}
    write_examples(tmp_path, rows)
    return tmp_path


def client(run_dir, against=None):
    return TestClient(create_app(run_dir, against))


def answer_texts(html):
    return dict(re.findall(r'<div class="answer" id="answer-([AB])">(.*?)</div>', html, re.S))


def tuned_letter(html):
    """Which side shows the tuned answer, read off the page the way a person would."""
    return next(side for side, text in answer_texts(html).items() if text.startswith("tuned"))


def vote(app, item_id, reviewer, choice, comment=""):
    return app.post(f"/items/{item_id}/vote", data={"reviewer": reviewer, "choice": choice, "comment": comment},
                    follow_redirects=False)


def test_start_asks_for_a_name_then_goes_to_the_first_item(run_dir):
    app = client(run_dir)
    assert 'name="reviewer"' in app.get("/").text
    response = app.get("/", params={"reviewer": " Ana "}, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/items/0?reviewer=Ana")


def test_a_bad_name_is_refused_with_the_reason(run_dir):
    response = client(run_dir).get("/", params={"reviewer": "<b>x"})
    assert response.status_code == 400
    assert "reviewer name &#x27;&lt;b&gt;x&#x27;: use 1 to 60 letters" in response.text
    assert "<b>x" not in response.text


def test_the_page_shows_the_tuned_answer_on_the_side_the_rule_says(run_dir):
    app = client(run_dir)
    for item_id in range(4):
        for reviewer in ("Ana", "Ben"):
            page = app.get(f"/items/{item_id}", params={"reviewer": reviewer}).text
            assert tuned_letter(page) == tuned_side(item_id, reviewer)
            assert "few" in answer_texts(page)["B" if tuned_letter(page) == "A" else "A"]


def test_a_vote_is_saved_with_its_unshuffled_meaning(run_dir):
    app = client(run_dir)
    side = tuned_letter(app.get("/items/1?reviewer=Ana").text)
    other = "B" if side == "A" else "A"
    response = vote(app, 1, "Ana", other, "too long")
    assert (response.status_code, response.headers["location"]) == (303, "/items/2?reviewer=Ana")
    [saved] = VoteStore(run_dir / "review" / "votes.jsonl").read()
    assert (saved["item"], saved["reviewer"], saved["choice"], saved["winner"]) == (1, "Ana", other, "baseline")
    assert (saved["tuned_side"], saved["against"], saved["comment"]) == (side, "few_shot", "too long")


def test_a_re_vote_replaces_the_earlier_one_and_the_page_shows_it(run_dir):
    app = client(run_dir)
    side = tuned_letter(app.get("/items/0?reviewer=Ana").text)
    vote(app, 0, "Ana", "tie")
    vote(app, 0, "Ana", side, "clearer")
    page = app.get("/items/0?reviewer=Ana").text
    assert re.search(rf'value="{side}" required checked', page) and ">clearer</textarea>" in page
    summary = app.get("/summary.json").json()
    assert (summary["votes"], summary["outcomes"]["tuned"], summary["win_rate"]) == (1, 1, 1.0)


def test_votes_survive_a_restart_and_voting_moves_to_the_next_unvoted_item(run_dir):
    first = client(run_dir)
    for item_id in (0, 2):
        vote(first, item_id, "Ana", "tie")
    restarted = client(run_dir)
    assert restarted.get("/summary.json").json()["votes"] == 2
    assert restarted.get("/", params={"reviewer": "Ana"}, follow_redirects=False).headers["location"] == \
        "/items/1?reviewer=Ana"
    assert vote(restarted, 1, "Ana", "A").headers["location"] == "/items/3?reviewer=Ana"
    assert vote(restarted, 3, "Ana", "B").headers["location"] == "/done?reviewer=Ana"
    assert "voted on all 4 items" in restarted.get("/done?reviewer=Ana").text
    assert "you have voted on 4" in restarted.get("/items/0?reviewer=Ana").text


def test_model_reviewer_and_comment_text_is_escaped_everywhere(run_dir):
    app = client(run_dir)
    page = app.get("/items/2?reviewer=Ana").text
    vote(app, 2, "Ana", "tie", f"comment {ATTACK}")
    pages = [page, app.get("/items/2?reviewer=Ana").text, app.get("/tally").text]
    for html in pages:
        assert "<script>" not in html and "<img" not in html
    assert "prompt &lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;&lt;img src=x onerror=" in page
    assert "few &lt;script&gt;" in page
    assert "comment &lt;script&gt;" in pages[1] and "comment &lt;script&gt;" in pages[2]


def test_a_forged_choice_or_unknown_item_is_refused(run_dir):
    app = client(run_dir)
    response = vote(app, 0, "Ana", "tuned")
    assert response.status_code == 400 and "choice &#x27;tuned&#x27;: pick one of A, B, tie" in response.text
    assert vote(app, 99, "Ana", "A").status_code == 404
    assert app.get("/items/99?reviewer=Ana").status_code == 404
    assert not (run_dir / "review" / "votes.jsonl").exists()


def test_every_vote_rewrites_the_summary_files(run_dir):
    app = client(run_dir)
    side = tuned_letter(app.get("/items/0?reviewer=Ana").text)
    vote(app, 0, "Ana", side)
    assert '"win_rate": 1.0' in (run_dir / "review" / "summary.json").read_text()
    assert "tuned preferred on 100% of 1 reviewed item" in (run_dir / "review" / "report.md").read_text()


def test_the_tally_page_shows_win_rate_interval_and_reviewers(run_dir):
    app = client(run_dir)
    for reviewer in ("Ana", "Ben"):
        for item_id in (0, 1):
            vote(app, item_id, reviewer, tuned_side(item_id, reviewer))
    page = app.get("/tally").text
    assert '<td id="win-rate">100%</td>' in page and '<td id="votes">4</td>' in page
    assert '<td id="ci">34% – 100%</td>' in page  # Wilson(2, 2)
    assert "<td>Ana</td><td>2</td><td>2</td>" in page
    assert "2 reviewers agree on 100% of pairs over the 2 items more than one reviewed" in page


def test_the_zero_shot_comparison_on_request(run_dir):
    page = client(run_dir, "zero_shot").get("/items/0?reviewer=Ana").text
    assert sorted(answer_texts(page).values()) == ["tuned 0", "zero 0"]
