"""The web UI in real headless Chromium against `tunesmith serve`: a wrong key sees nothing; sign in, drop a file,
read its check and data report, start a job on the tiny model, watch the loss curve grow while it trains (and the
learning rate `auto` chose appear), read the before/after report, and chat with the tuned model beside its base; a
diffusion model's prompt box draws images. (The review pages are tested through the
mount in tests/unit/serve/test_ui_review.py: the tiny base model answers only whitespace, so its runs have no
baseline answers to review.)"""

import pytest

from .conftest import wait_for

pytestmark = pytest.mark.slow

# Long enough to be watched (a step logged at a time), short enough for the tiny model on a busy CPU.
JOB_YAML = """\
method: {r: 4, alpha: 8}
training: {max_steps: 80, batch_size: 4, precision: fp32, log_every: 1, save_every: 20, eval_every: 10,
           learning_rate: auto}  # the range test's choice shows on the page as it is made
eval: {max_new_tokens: 4, metrics: [perplexity, exact_match]}  # exact_match: answers in the report
data: {max_length: 128}
"""
DROP = """([name, text]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([text], name, {type: "application/jsonl"}));
  return transfer;
}"""
PROGRESS = """() => [document.getElementById("job").dataset.status,
                     Number(document.getElementById("loss-chart").dataset.points)]"""


def page_with_console(browser):
    """A fresh page (its own cookies) and the console errors it logs, CSP refusals included."""
    page = browser.new_context().new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, errors


def test_a_wrong_key_shows_an_error_and_no_data(processes, chat_file, browser):
    server = processes.server("--no-worker")
    client = server.client(processes.key("acme"))
    with open(chat_file, "rb") as handle:
        theirs = client.files.create(file=handle, purpose="fine-tune").id
    page = browser.new_page()

    page.goto(server.url + "/")
    assert page.url == server.url + "/ui/sign-in"
    page.fill("#key", "ts-not-a-key")
    page.click("#sign-in")
    assert "not valid" in page.inner_text("#error")
    assert theirs not in page.content() and page.locator("#files, #jobs").count() == 0
    for path in ("/ui/files", "/ui/jobs", f"/ui/files/{theirs}"):
        page.goto(server.url + path)
        assert page.url == server.url + "/ui/sign-in" and theirs not in page.content()
    # The API does not take the UI's missing cookie for a key either.
    assert page.request.get(server.url + "/v1/files").status == 401


def test_sign_in_upload_train_watch_the_curve_read_the_report_and_chat(processes, chat_file, browser, tmp_path):
    server = processes.server()
    key = processes.key("acme")
    other = server.client(processes.key("globex"))
    with open(chat_file, "rb") as handle:
        globex_file = other.files.create(file=handle, purpose="fine-tune").id
    page, errors = page_with_console(browser)

    page.goto(server.url + "/ui/sign-in")
    page.fill("#key", key)
    with page.expect_navigation():
        page.click("#sign-in")
    assert page.url == server.url + "/ui/jobs" and page.inner_text("#tenant") == "acme"

    # Files: a dropped file is uploaded and checked; a bad one says which line is wrong.
    page.click("text=Files")
    assert globex_file not in page.content()
    transfer = page.evaluate_handle(DROP, ["train.jsonl", chat_file.read_text()])
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})
    page.wait_for_selector("#upload-result .status-processed", timeout=60_000)
    file_id = page.get_attribute("#files tbody tr:first-child", "data-file-id")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n{oops\n')
    page.set_input_files("#file-input", str(bad))
    page.wait_for_selector("#upload-result .error", timeout=60_000)
    assert "bad.jsonl:2" in page.inner_text("#upload-result .error")
    page.reload()
    assert page.locator("#files tbody tr").count() == 2

    page.click(f"#files tr[data-file-id='{file_id}'] a")
    assert page.inner_text("#check-summary") == "train.jsonl: 24 chat examples, no problems"
    report = page.frame_locator("#data-report")
    report.locator("h1").wait_for(timeout=180_000)
    assert report.locator("h1").inner_text() == "Data report: train.jsonl"
    assert str(processes.home) not in page.request.get(f"{server.url}/ui/files/{file_id}/report").text()

    # A job from the form and pasted YAML.
    page.click("text=Start a job on this file")
    page.select_option("#method", "lora")
    page.fill("#suffix", "ui")
    page.fill("#config", JOB_YAML)
    with page.expect_navigation():
        page.click("text=Create job")
    job_id = page.get_attribute("#job", "data-job-id")
    assert page.url == f"{server.url}/ui/jobs/{job_id}"

    # The curve grows while the job runs: two looks, both while running, the second with more points.
    first = wait_for(lambda: (seen := page.evaluate(PROGRESS))[0] == "running" and seen[1] > 0 and seen, 300,
                     "the first points of the curve", interval=0.2)
    later = wait_for(lambda: (seen := page.evaluate(PROGRESS))[1] > first[1] and seen, 120, "more points",
                     interval=0.2)
    assert later[0] == "running", (first, later)
    # The rate learning_rate: auto chose, on the page while it runs (not drawn with it: the page was loaded before).
    assert "learning_rate=" in page.inner_text("#hyperparameters")
    assert "learning_rate_multiplier=auto" not in page.inner_text("#hyperparameters")

    # Done: the page reloads itself with the report.
    page.wait_for_selector("#report-scores", timeout=300_000)
    assert page.inner_text("#status") == "succeeded"
    rows = [row.inner_text() for row in page.locator("#report-scores tbody th").all()]
    assert rows == ["base", "few_shot", "tuned", "change"]
    assert page.locator("#checkpoints tbody tr").count() == 4  # steps 20, 40, 60, 80
    # A stream replayed on reload: every step's point (wait_for_selector polls without eval, which the CSP forbids).
    page.wait_for_selector("#loss-chart[data-points='80']", timeout=60_000)
    assert int(page.get_attribute("#loss-chart", "data-val-points")) >= 8
    page.wait_for_selector("#events >> text=The job has successfully completed")
    assert page.locator(".sample").count() >= 1  # the first answers, base and tuned side by side
    tuned = page.inner_text("#tuned-model")

    # Chat: the tuned model beside its base model.
    page.goto(f"{server.url}/ui/jobs/{job_id}")
    page.click("text=chat beside the base model")
    assert [page.get_attribute(f"#pane-{role}", "data-model") for role in ("tuned", "base")] == [tuned, "tiny"]
    page.fill("#prompt", "How do I cook rice?")
    page.fill("#max-tokens", "8")
    page.click("text=Send to both")
    for role in ("tuned", "base"):
        page.wait_for_selector(f"#pane-{role}[data-state='answered']", timeout=120_000)
        assert page.locator(f"#pane-{role} .turn").count() == 2
    assert page.locator(".chat-pane .error").count() == 0
    assert errors == []

    # What the browser saw is what the API says.
    client = server.client(key)
    job = client.fine_tuning.jobs.retrieve(job_id)
    assert (job.status, job.fine_tuned_model, job.suffix, job.method.type) == ("succeeded", tuned, "ui", "lora")


def test_a_diffusion_models_prompt_box_draws_images(processes, browser):
    server = processes.server("--no-worker", "--model", "sd=tunesmith-tiny-sd")
    key = processes.key("acme")
    page, errors = page_with_console(browser)
    page.goto(server.url + "/ui/sign-in")
    page.fill("#key", key)
    with page.expect_navigation():
        page.click("#sign-in")

    page.click("text=Models")
    page.click("#base-models li:has(code:text-is('sd')) >> text=draw images")
    assert page.inner_text("#image-model") == "sd"
    page.fill("#prompt", "a photo of a ball")
    for field, value in (("#n", "2"), ("#seed", "4"), ("#size", "32"), ("#steps", "2")):
        page.fill(field, value)
    with page.expect_navigation(timeout=300_000):
        page.click("#draw", timeout=300_000)  # the click waits for the page it leads to: drawing takes a while
    images = page.locator("#images img")
    assert images.count() == 2
    assert images.evaluate_all("all => all.map(image => [image.complete, image.naturalWidth])") == [[True, 32]] * 2
    assert page.inner_text("#drawn") == "2 images at 32x32 px, seeds 4 to 5"
    assert page.input_value("#prompt") == "a photo of a ball"  # the form comes back as it was left
    assert errors == []  # data: images are allowed by the page's CSP
