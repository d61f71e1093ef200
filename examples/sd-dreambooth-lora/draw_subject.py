"""Draw the example's subject: "sks ball", an orange ball with two navy stripes, in eight scenes.

The images are made for this project (no photos, no licences to track): a shaded sphere with its stripes, a soft
shadow and a procedural background (sky over grass, sand, a wooden floor, a studio backdrop). Each image has its
own seed, so running this again rewrites the same files.

    python examples/sd-dreambooth-lora/draw_subject.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

SIZE = 512
OUT = Path(__file__).with_name("images")
BALL = np.array([0.98, 0.52, 0.12])  # orange
STRIPE = np.array([0.10, 0.16, 0.42])  # navy
GROUNDS = {  # (sky top, sky bottom, ground near, ground far)
    "grass": ((0.35, 0.60, 0.95), (0.75, 0.87, 1.0), (0.20, 0.50, 0.16), (0.42, 0.68, 0.30)),
    "sand": ((0.30, 0.55, 0.92), (0.80, 0.90, 1.0), (0.86, 0.76, 0.55), (0.95, 0.88, 0.70)),
    "floor": ((0.85, 0.82, 0.76), (0.93, 0.91, 0.86), (0.45, 0.28, 0.14), (0.62, 0.42, 0.24)),
    "studio": ((0.62, 0.66, 0.72), (0.80, 0.83, 0.87), (0.70, 0.72, 0.76), (0.86, 0.87, 0.90)),
}


def background(kind: str, horizon: float, rng: np.random.Generator) -> np.ndarray:
    sky_top, sky_bottom, near, far = (np.array(c) for c in GROUNDS[kind])
    y = np.linspace(0.0, 1.0, SIZE)[:, None, None]
    sky = sky_top + (sky_bottom - sky_top) * (y / horizon)
    ground = far + (near - far) * ((y - horizon) / (1.0 - horizon))
    image = np.where(y < horizon, sky, ground) * np.ones((1, SIZE, 1))
    if kind == "floor":  # planks: darker lines that converge a little towards the horizon
        x = np.linspace(-1.0, 1.0, SIZE)[None, :]
        depth = np.clip((y[..., 0] - horizon) / (1.0 - horizon), 1e-3, 1.0)
        planks = (np.abs(np.sin(x / depth * 9.0)) < 0.06) & (y[..., 0] > horizon)
        image[planks] *= 0.7
    texture = rng.normal(0.0, 0.025, (SIZE, SIZE, 1)) * (y > horizon)  # grain on the ground only
    return np.clip(image + texture, 0.0, 1.0)


def ball(image: np.ndarray, cx: float, cy: float, radius: float, spin: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    dx, dy = (xx - cx) / radius, (yy - cy) / radius
    inside = dx**2 + dy**2 < 1.0
    dz = np.sqrt(np.clip(1.0 - dx**2 - dy**2, 0.0, 1.0))
    # Two stripes around the ball, tilted by `spin`: bands of the normal's angle about a tilted axis.
    axis = np.array([np.sin(spin), np.cos(spin) * 0.8, 0.6])
    axis /= np.linalg.norm(axis)
    along = dx * axis[0] + dy * axis[1] + dz * axis[2]
    colour = np.where((np.abs(np.abs(along) - 0.45) < 0.12)[..., None], STRIPE, BALL)
    light = np.array([-0.5, -0.6, 0.62])
    light /= np.linalg.norm(light)
    lambert = np.clip(dx * light[0] + dy * light[1] + dz * light[2], 0.0, 1.0)
    highlight = np.clip(lambert, 0.0, 1.0) ** 40 * 0.6
    shaded = colour * (0.25 + 0.75 * lambert)[..., None] + highlight[..., None]
    image = image.copy()
    image[inside] = np.clip(shaded[inside], 0.0, 1.0)
    return image


def shadow(image: np.ndarray, cx: float, ground_y: float, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    ellipse = ((xx - cx - radius * 0.3) / (radius * 1.1)) ** 2 + ((yy - ground_y) / (radius * 0.25)) ** 2
    darkness = np.clip(1.0 - ellipse, 0.0, 1.0) * 0.45
    return image * (1.0 - darkness[..., None])


def draw(seed: int, kind: str) -> Image.Image:
    rng = np.random.default_rng(seed)
    horizon = rng.uniform(0.35, 0.55)
    radius = rng.uniform(0.14, 0.24) * SIZE
    cx = rng.uniform(0.3, 0.7) * SIZE
    ground_y = rng.uniform(horizon + 0.25, 0.92) * SIZE
    image = shadow(background(kind, horizon, rng), cx, ground_y, radius)
    image = ball(image, cx, ground_y - radius * 0.95, radius, rng.uniform(-1.0, 1.0))
    picture = Image.fromarray((image * 255).round().astype(np.uint8))
    return picture.filter(ImageFilter.GaussianBlur(0.6))  # a camera's softness instead of aliased edges


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for i, kind in enumerate([*GROUNDS, *GROUNDS]):
        draw(seed=i, kind=kind).save(OUT / f"ball-{i:02d}.png", optimize=True)
    print(f"wrote {2 * len(GROUNDS)} images to {OUT}")


if __name__ == "__main__":
    main()
