"""Helpers for the data-preparation tests: a working folder, data writers, and an isolated cache."""

import json

import pytest


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    # Paths in messages read as users write them ("train.jsonl:3"), and prepared sets never touch the real cache.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def write_jsonl():
    def write(name, records):
        with open(name, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
        return name

    return write


@pytest.fixture
def read_jsonl():
    def read(path):
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    return read


def chat(question, answer, system=None, **extra):
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": messages, **extra}


@pytest.fixture
def make_chat():
    return chat


# Words drawn at random (seeded) for conversations that share almost no shingle, so they survive deduplication.
WORDS = ("rice pasta eggs bread soup steak salmon tofu lentils beans carrots potatoes onions garlic spinach mushrooms "
         "chicken pork lamb shrimp quinoa oats apples pears berries cheese yogurt butter pancakes dumplings store "
         "season reheat freeze slice roast boil grill bake steam whisk fold knead chill simmer braise poach fry toast "
         "glaze marinate pickle ferment smoke zest grate mince dice julienne blanch sear baste drizzle sprinkle "
         "pepper salt sugar honey vinegar lemon lime basil thyme rosemary cumin paprika ginger cinnamon nutmeg "
         "vanilla cocoa almond walnut pecan cashew hazelnut coconut sesame olive mustard ketchup mayonnaise").split()


@pytest.fixture
def distinct_chats():
    def make(n, **extra):
        import random

        chats = []
        for i in range(n):
            rng = random.Random(i)
            question = " ".join(rng.sample(WORDS, 8)) + f" (question {i})?"
            answer = " ".join(rng.sample(WORDS, 12)) + "."
            chats.append(chat(question.capitalize(), answer.capitalize(), **extra))
        return chats

    return make
