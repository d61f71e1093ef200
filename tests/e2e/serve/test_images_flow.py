"""A diffusion job through the official openai client against a real server: upload a .zip of subject images ->
DreamBooth LoRA job on the tiny local pipeline -> succeeded -> `images.generate` with its `ft:` id and the base."""

import base64
import io
import json

import numpy as np
import openai
import pytest
from PIL import Image

from tests.unit.serve.test_image_archives import png, zip_of

from .conftest import all_events, wait_finished

pytestmark = pytest.mark.slow

DREAMBOOTH = {"type": "dreambooth_lora", "dreambooth_lora": {"r": 4, "hyperparameters": {"batch_size": 2}}}
RUN = {"training": {"max_steps": 4, "log_every": 1, "save_every": 2, "learning_rate": 1e-3},
       "data": {"instance_prompt": "a photo of sks ball", "class_prompt": "a photo of a ball", "num_class_images": 2,
                "class_inference_steps": 2, "resolution": 64},
       "validation": {"prompts": ["a photo of sks ball"], "n": 2, "steps": 2}}


def pictures(response) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(item.b64_json))) for item in response.data]


def test_train_on_an_image_archive_and_draw_with_the_tuned_model(processes, tmp_path):
    server = processes.server("--model", "sd=tunesmith-tiny-sd")
    client = server.client(processes.key("acme"))
    archive = zip_of({**{f"ball/{i}.png": png(i) for i in range(4)}, "ball/0.txt": b"a photo of sks ball, close up"})
    uploaded = client.files.create(file=("subject.zip", archive), purpose="fine-tune")
    assert (uploaded.status, uploaded.filename) == ("processed", "subject.zip")

    job = client.fine_tuning.jobs.create(model="sd", training_file=uploaded.id, suffix="ball", method=DREAMBOOTH,
                                         extra_body={"tunesmith": RUN})
    done = wait_finished(client, job.id, 600)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:sd:acme:ball:{job.id.removeprefix('ftjob-')}"
    assert (done.hyperparameters.batch_size, done.method.type) == (2, "dreambooth_lora")
    events = all_events(client, job.id)
    steps = [e.data["step"] for e in events if e.type == "metrics" and e.data["type"] == "step"]
    assert steps == [1, 2, 3, 4]
    assert str(processes.home) not in json.dumps([e.data for e in events])
    assert len(list((processes.home / "class_images").glob("tenant-*/*.png"))) == 2  # drawn inside --home

    first = client.images.generate(model=done.fine_tuned_model, prompt="a photo of sks ball", n=2, size="64x64",
                                   response_format="b64_json", extra_body={"seed": 11})
    images = pictures(first)
    assert [image.size for image in images] == [(64, 64), (64, 64)]
    assert images[0].tobytes() != images[1].tobytes()  # seeds 11 and 12
    again = client.images.generate(model=done.fine_tuned_model, prompt="a photo of sks ball", n=1,
                                   extra_body={"seed": 12})
    # Seed 12 alone draws what it drew second in the batch (the same noise; a batch's arithmetic may differ in a last
    # bit), at the run's own size by default: 64 px.
    assert np.abs(np.asarray(pictures(again)[0], dtype=int) - np.asarray(images[1], dtype=int)).max() <= 2
    base = client.images.generate(model="sd", prompt="a photo of sks ball", n=1, size="64x64",
                                  extra_body={"seed": 11, "steps": 2})
    assert pictures(base)[0].size == (64, 64)
    assert done.fine_tuned_model in [m.id for m in client.models.list()]

    other = server.client(processes.key("globex"))
    with pytest.raises(openai.NotFoundError, match="No such model"):
        other.images.generate(model=done.fine_tuned_model, prompt="a photo of sks ball")
    with pytest.raises(openai.BadRequestError, match="is a diffusion model; use it with /v1/images/generations"):
        client.chat.completions.create(model=done.fine_tuned_model, messages=[{"role": "user", "content": "hi"}])
