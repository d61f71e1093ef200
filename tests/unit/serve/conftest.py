"""An app on a temporary home with two tenants (acme, globex) and an admin key, driven through TestClient."""

import json

import pytest
import torch
from fastapi.testclient import TestClient

from tunesmith.config.load import build_config, save_config
from tunesmith.serve.app import create_app
from tunesmith.serve.keys import create_key
from tunesmith.serve.settings import make_settings

UPLOAD_LIMIT = 4096


def chat_lines(n=6) -> bytes:
    lines = []
    for i in range(n):
        messages = [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": f"answer {i}"}]
        lines.append(json.dumps({"messages": messages}))
    return ("\n".join(lines) + "\n").encode()


def make_run(folder, tiny_model_dir, seed):
    """A finished run folder: config.yaml and a LoRA adapter (random, non-zero weights) with its tokenizer."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder.mkdir()
    save_config(build_config({"model": str(tiny_model_dir), "data": {"train": "train.jsonl"},
                              "method": {"name": "lora", "r": 4}, "output_dir": str(folder)}), folder / "config.yaml")
    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    model.save_pretrained(folder / "adapter", safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder / "adapter")  # as a run saves it
    return folder


class Api:
    """Requests as a tenant would send them."""

    def __init__(self, client, keys):
        self.client, self.keys = client, keys

    def auth(self, tenant="acme"):
        return {"Authorization": f"Bearer {self.keys[tenant]}"}

    def upload(self, content=None, filename="train.jsonl", purpose="fine-tune", tenant="acme"):
        content = chat_lines() if content is None else content
        return self.client.post("/v1/files", headers=self.auth(tenant), files={"file": (filename, content)},
                                data={"purpose": purpose})

    def file_id(self, tenant="acme", **kwargs):
        response = self.upload(tenant=tenant, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()["id"]

    def create_job(self, training_file, tenant="acme", headers=None, **body):
        body = {"model": "tiny", "training_file": training_file, **body}
        return self.client.post("/v1/fine_tuning/jobs", headers={**self.auth(tenant), **(headers or {})}, json=body)

    def job(self, tenant="acme", **body):
        response = self.create_job(self.file_id(tenant=tenant), tenant=tenant, **body)
        assert response.status_code == 200, response.text
        return response.json()

    def get(self, path, tenant="acme", **kwargs):
        return self.client.get(path, headers=self.auth(tenant), **kwargs)

    def post(self, path, tenant="acme", **kwargs):
        return self.client.post(path, headers=self.auth(tenant), **kwargs)


@pytest.fixture
def settings(tmp_path, tiny_model_dir):
    return make_settings(tmp_path / "home", models=[f"tiny={tiny_model_dir}"], upload_limit=UPLOAD_LIMIT)


@pytest.fixture
def app(settings):
    return create_app(settings)


@pytest.fixture
def keys(app):
    with app.state.sessions() as session:
        made = {name: create_key(session, name)[0] for name in ("acme", "globex")}
        made["admin"] = create_key(session, "operators", admin=True)[0]
        session.commit()
    return made


@pytest.fixture
def api(app, keys):
    with TestClient(app) as client:
        yield Api(client, keys)


ORIGIN = {"Origin": "http://testserver"}  # what a browser sends with a form or fetch from one of the UI's pages


class Browser:
    """The web UI as one browser sees it: its own cookie jar, and the Origin header of the UI's own pages."""

    def __init__(self, app):
        self.client = TestClient(app, follow_redirects=False)

    def sign_in(self, key):
        return self.client.post("/ui/sign-in", data={"key": key}, headers=ORIGIN)

    def get(self, path, **kwargs):
        return self.client.get(path, **kwargs)

    def post(self, path, **kwargs):
        return self.client.post(path, headers={**ORIGIN, **kwargs.pop("headers", {})}, **kwargs)


@pytest.fixture
def browser(app, keys):
    """A browser signed in as acme."""
    signed_in = Browser(app)
    assert signed_in.sign_in(keys["acme"]).status_code == 303
    return signed_in
