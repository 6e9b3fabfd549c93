"""Draw resources/hsviewer.png and .ico: a low-rank matrix heatmap over a decaying singular-value spectrum.

Run from the repo root: .venv/bin/python packaging/make_icon.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZE = 256
RESOURCES = Path(__file__).resolve().parent.parent / "resources"
BACKGROUND = (24, 32, 48, 255)
BAR = (250, 190, 70, 255)
BAR_DROPPED = (90, 100, 120, 255)
KEPT = 4


def heatmap(size: int) -> Image.Image:
    """A rank-2 matrix u1 v1' + u2 v2' shown in a blue-to-orange colour ramp."""
    x = np.linspace(0, np.pi, size)
    m = np.outer(np.sin(x), np.cos(x / 2)) + 0.5 * np.outer(np.cos(2 * x), np.sin(3 * x))
    t = (m - m.min()) / (m.max() - m.min())
    low, high = np.array([40, 110, 220]), np.array([250, 140, 60])
    rgb = (low + t[..., None] * (high - low)).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def icon() -> Image.Image:
    image = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((4, 4, SIZE - 5, SIZE - 5), radius=40, fill=BACKGROUND)
    image.paste(heatmap(120), (68, 24))
    draw.rectangle((68, 24, 187, 143), outline=(230, 230, 240, 255), width=2)
    n, left, width, base = 10, 36, 18, 232
    for i in range(n):
        height = 72 * np.exp(-0.45 * i) + 4
        x = left + i * width
        draw.rectangle((x, base - height, x + width - 4, base), fill=BAR if i < KEPT else BAR_DROPPED)
    return image


def main() -> None:
    image = icon()
    image.save(RESOURCES / "hsviewer.png")
    image.save(RESOURCES / "hsviewer.ico", sizes=[(16, 16), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)])


if __name__ == "__main__":
    main()
