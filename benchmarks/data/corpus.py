"""A generated chat corpus with the mess real exports have, in known proportions, for the prepare benchmark.

Seeded, so every run measures the same file. Per 100 chats, about: 70 distinct conversations (1-3 exchanges,
answers of 30-80 words), 8 exact copies of earlier chats, 6 near copies (a few words changed), 5 copies of one
greeting exchange, 5 conversations ending on a user turn, 4 with personal data (e-mail, phone, card), 2 invalid
(unknown role or empty reply).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = (
    "rice pasta eggs bread soup steak salmon tofu lentils beans carrots potatoes onions garlic spinach mushrooms "
    "chicken pork lamb shrimp quinoa oats apples pears berries cheese yogurt butter pancakes dumplings oven pan pot "
    "lid knife board bowl whisk tray rack grill heat flame water oil salt pepper sugar flour honey vinegar lemon "
    "basil thyme rosemary cumin paprika ginger cinnamon stock sauce crust dough batter glaze until golden tender "
    "crisp soft thick thin warm cold hot fresh dry minutes hours overnight gently quickly slowly evenly first then "
    "after before while and or with without into onto over under the a an it its your this that for to of in on"
).split()
ACTIONS = ("roast", "boil", "simmer", "bake", "steam", "fry", "grill", "poach", "braise", "toast", "store", "freeze")
GREETING = [{"role": "user", "content": "Hi!"},
            {"role": "assistant", "content": "Hello! How can I help you cook today?"}]
SYSTEM = {"role": "system", "content": "You are Sous, a cooking assistant. Answer briefly."}


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def _conversation(rng: random.Random) -> list[dict]:
    messages = [SYSTEM]
    for _ in range(rng.choice((1, 1, 2, 3))):
        topic = f"{rng.choice(ACTIONS)} {rng.choice(WORDS[:30])}"
        messages.append({"role": "user", "content": f"How do I {topic}? {_sentence(rng, rng.randint(4, 12))}"})
        answer = " ".join(_sentence(rng, rng.randint(8, 16)) for _ in range(rng.randint(3, 5)))
        messages.append({"role": "assistant", "content": f"Short answer: {answer}"})
    return messages


def _near_copy(rng: random.Random, messages: list[dict]) -> list[dict]:
    copy = [dict(m) for m in messages]
    reply = copy[-1]["content"].split()
    for _ in range(2):
        reply[rng.randrange(len(reply))] = rng.choice(WORDS)
    copy[-1]["content"] = " ".join(reply)
    return copy


def _with_personal_data(rng: random.Random, messages: list[dict]) -> list[dict]:
    n = rng.randrange(1000)
    detail = rng.choice((f"mail me at cook{n}@example.com", f"call me on +1 415-555-{n:04d}",
                         f"my card is 4111 1111 1111 1111 (order {n})"))
    copy = [dict(m) for m in messages]
    copy[1]["content"] += f" By the way, {detail}."
    return copy


def generate(path: Path, chats: int, seed: int = 0) -> dict[str, int]:
    """Write `chats` lines of chat JSONL to path; returns how many of each kind were planted."""
    rng = random.Random(seed)
    made: list[list[dict]] = []
    kinds = {"distinct": 0, "exact_copy": 0, "near_copy": 0, "greeting": 0, "trailing_user": 0, "personal": 0,
             "invalid": 0}
    with open(path, "w", encoding="utf-8") as handle:
        for _ in range(chats):
            roll = rng.random()
            if made and roll < 0.08:
                kind, messages = "exact_copy", rng.choice(made)
            elif made and roll < 0.14:
                kind, messages = "near_copy", _near_copy(rng, rng.choice(made))
            elif roll < 0.19:
                kind, messages = "greeting", [SYSTEM, *GREETING]
            elif roll < 0.24:
                kind, messages = "trailing_user", [*_conversation(rng), {"role": "user", "content": "Thanks!"}]
            elif roll < 0.28:
                kind, messages = "personal", _with_personal_data(rng, _conversation(rng))
            elif roll < 0.30:
                kind, messages = "invalid", [SYSTEM, {"role": "user", "content": "Hello?"},
                                             rng.choice(({"role": "bot", "content": "Hi"},
                                                         {"role": "assistant", "content": " "}))]
            else:
                kind, messages = "distinct", _conversation(rng)
                made.append(messages)
            kinds[kind] += 1
            handle.write(json.dumps({"messages": messages}) + "\n")
    return kinds
