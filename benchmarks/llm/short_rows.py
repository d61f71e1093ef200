"""The short-row workload: a generated JSON-extraction chat task of ~50-100 tokens per example, nothing downloaded.

Short rows are where per-step overhead shows: the matrix products shrink with the row and everything around them
(casts, element-wise work, the optimizer, Python) does not. Each chat asks for the order in a customer's message as
one JSON object; the reply is that object. Seeded, so every tool and every run trains on the same rows.

    python benchmarks/llm/short_rows.py OUT_DIR      # writes OUT_DIR/train.jsonl and OUT_DIR/test.jsonl
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

TRAIN_EXAMPLES = 400
TEST_EXAMPLES = 40
SYSTEM = "Reply with the order as JSON."
FIRST = ("Ana", "Ben", "Chloe", "Dmitri", "Elif", "Femi", "Grace", "Hiro", "Ines", "Jonas", "Kavya", "Luca",
         "Mei", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara")
LAST = ("Costa", "Novak", "Okafor", "Lindqvist", "Haddad", "Moreau", "Tanaka", "Silva", "Kowalski", "Byrne",
        "Rossi", "Mensah", "Ivanova", "Schmidt", "Duarte", "Nakamura", "Osei", "Fischer", "Reyes", "Berg")
ITEMS = ("cast-iron skillet", "chef's knife", "bread proofing basket", "stand mixer bowl", "pizza stone",
         "digital thermometer", "bamboo steamer", "pasta roller", "dutch oven", "spice grinder", "wok",
         "mandoline slicer", "silicone baking mat", "pepper mill", "rolling pin", "cake tin")
CITIES = ("Lyon", "Porto", "Leeds", "Gdansk", "Utrecht", "Bergen", "Bologna", "Tampere", "Graz", "Cork",
          "Malmo", "Ghent", "Brno", "Seville", "Kyoto", "Accra", "Lagos", "Denver", "Halifax", "Perth")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
MESSAGES = (
    "Hi, this is {name}. Please send {quantity} x {item} to {city} by {day} {month}.",
    "{name} here - I'd like {quantity} {item} delivered in {city} on {month} {day}, thanks!",
    "Order for {name}: {quantity} of the {item}, shipping to {city}, needed {day} {month}.",
    "Could you get {quantity} {item} to {city} before {month} {day}? Name: {name}.",
    "Please book {quantity} x {item} for {name} ({city}), delivery date {day} {month}.",
)


def examples(count: int, seed: int) -> list[dict]:
    """`count` chats {"messages": [system, user, assistant]}, the same for the same seed."""
    rng = random.Random(seed)
    chats = []
    for _ in range(count):
        order = {
            "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            "item": rng.choice(ITEMS),
            "quantity": rng.randint(1, 12),
            "city": rng.choice(CITIES),
        }
        month = rng.randrange(12)
        day = rng.randint(1, 28)
        message = rng.choice(MESSAGES).format(**order, day=day, month=MONTHS[month])
        order["date"] = f"2026-{month + 1:02d}-{day:02d}"
        chats.append({"messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": message},
            {"role": "assistant", "content": json.dumps(order, separators=(",", ":"))},
        ]})
    return chats


def write(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """train.jsonl (TRAIN_EXAMPLES chats) and test.jsonl (TEST_EXAMPLES, drawn from another seed) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "train.jsonl", folder / "test.jsonl"
    for path, chats in zip(paths, (examples(TRAIN_EXAMPLES, seed), examples(TEST_EXAMPLES, seed + 1))):
        path.write_text("".join(json.dumps(chat) + "\n" for chat in chats))
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python benchmarks/llm/short_rows.py OUT_DIR")
    for written in write(Path(sys.argv[1])):
        print(written)
