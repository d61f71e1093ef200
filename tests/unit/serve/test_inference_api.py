"""Chat and text completions in OpenAI's shape (whole and streamed) for base models and the caller's tuned ones."""

import json

import pytest

from tunesmith.serve.db import now
from tunesmith.serve.tables import Job, Tenant

from .conftest import make_run

pytestmark = pytest.mark.slow  # loads models and generates

CHAT = [{"role": "user", "content": "How do I cook rice?"}]


@pytest.fixture
def tuned(api, app, settings, tiny_model_dir):
    """A succeeded job of acme's with its run folder: its model id."""
    with app.state.sessions() as session:
        tenant = session.query(Tenant).filter(Tenant.name == "acme").one()
        job = Job(id="ftjob-abc", tenant_seq=tenant.seq, model="tiny", training_file="file-x", method={},
                  hyperparameters={}, status="succeeded", created_at=now(), finished_at=now(), result_files=[],
                  fine_tuned_model="ft:tiny:acme::abc")
        session.add(job)
        session.commit()
    make_run(settings.runs_dir / "ftjob-abc", tiny_model_dir, seed=1)
    return "ft:tiny:acme::abc"


def chat(api, model, tenant="acme", **body):
    # Sampled with a seed: greedy answers of a random tiny model are mostly whitespace, which answers strip.
    return api.post("/v1/chat/completions", tenant=tenant,
                    json={"model": model, "messages": CHAT, "temperature": 1, "seed": 0, "max_tokens": 6, **body})


def sse_data(response):
    return [line[len("data: "):] for line in response.text.splitlines() if line.startswith("data: ")]


def test_chat_with_the_base_and_the_tuned_model(api, tuned):
    base = chat(api, "tiny").json()
    assert base["object"] == "chat.completion" and base["model"] == "tiny"
    choice = base["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert choice["finish_reason"] == "length"  # a random tiny model does not stop within 6 tokens
    assert base["usage"]["completion_tokens"] >= 6
    assert base["usage"]["total_tokens"] == base["usage"]["prompt_tokens"] + base["usage"]["completion_tokens"]
    ft = chat(api, tuned).json()
    assert ft["model"] == tuned and ft["choices"][0]["message"]["content"] != choice["message"]["content"]


def test_streamed_chat_pieces_join_to_the_whole_answer(api, tuned):
    whole = chat(api, tuned).json()["choices"][0]["message"]["content"]
    response = chat(api, tuned, stream=True, stream_options={"include_usage": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    data = sse_data(response)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] >= 6


def test_text_completions_whole_and_streamed(api):
    body = {"model": "tiny", "prompt": "Rice is", "temperature": 1, "seed": 3, "max_tokens": 5}
    whole = api.post("/v1/completions", json=body).json()
    assert whole["object"] == "text_completion" and whole["choices"][0]["text"]
    streamed = [json.loads(d) for d in sse_data(api.post("/v1/completions", json={**body, "stream": True}))[:-1]]
    assert "".join(c["choices"][0]["text"] for c in streamed) == whole["choices"][0]["text"]
    assert streamed[-1]["choices"][0]["finish_reason"] == "length"


def test_a_stop_sequence_ends_the_answer_before_it(api):
    whole = chat(api, "tiny", max_tokens=12).json()["choices"][0]["message"]["content"]
    stop = whole[len(whole) // 2:][:3]
    cut = chat(api, "tiny", max_tokens=12, stop=[stop]).json()["choices"][0]
    assert cut["message"]["content"] == whole[: whole.index(stop)]
    assert cut["finish_reason"] == "stop"


def test_models_lists_the_bases_and_only_the_callers_tuned_models(api, tuned):
    mine = [m["id"] for m in api.get("/v1/models").json()["data"]]
    assert mine == ["smollm2-135m-instruct", "tiny", tuned]
    assert tuned not in [m["id"] for m in api.get("/v1/models", tenant="globex").json()["data"]]
    assert api.get(f"/v1/models/{tuned}").json()["owned_by"] == "acme"
    assert api.get(f"/v1/models/{tuned}", tenant="globex").status_code == 404


def test_another_tenants_tuned_model_is_not_found(api, tuned):
    theirs = chat(api, tuned, tenant="globex")
    unknown = chat(api, "ft:tiny:acme::nope", tenant="globex")
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["error"]["message"] == f"No such model: {tuned}"


@pytest.mark.parametrize("extra, param", [({"top_p": 0.5}, "top_p"), ({"n": 2}, "n"),
                                          ({"logit_bias": {"1": 2}}, "logit_bias"),
                                          ({"stop": ["a", "b", "c", "d", "e"]}, None)])
def test_parameters_tunesmith_cannot_honour_are_refused(api, extra, param):
    response = chat(api, "tiny", **extra)
    assert response.status_code == 400
    if param:
        assert response.json()["error"]["param"] == param
    else:
        assert "stop: at most 4" in response.json()["error"]["message"]
