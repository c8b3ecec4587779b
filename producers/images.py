"""Small real images for the generator's vision prompts: PNG bytes made here, written once, referenced by URI.

Each picture (a bar chart, a flag, a dot, a board) is drawn from its kind and variant alone, so the same
reference always names the same bytes. :class:`ImageShelf` writes them under a directory, named by their
content, and hands out references ``{uri, sha256, media_type}`` as a prompt's ``images`` carry them.

On purpose, a share of references is broken, as production's are (the build counts them):
``"sha256 mismatch"`` (the file is there, the digest is not its bytes') and ``"missing file"`` (the URI
names a file that is never written). Each broken reference is reported with its reason.
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
import zlib
from pathlib import Path
from typing import Any

__all__ = ["IMAGE_FAULTS", "KINDS", "ImageShelf", "picture", "png"]

KINDS = ("bars", "stripes", "dot", "board")
VARIANTS = 6  # pictures per kind: KINDS x VARIANTS distinct files at most
IMAGE_FAULTS = ("sha256 mismatch", "missing file")
#: where references point when the shelf has no directory (reserved domain: they never resolve)
NOWHERE = "https://images.example.com/preflog/"
WIDTH, HEIGHT = 48, 32
PALETTE = {
    "red": (220, 40, 40),
    "green": (40, 170, 70),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "black": (20, 20, 20),
    "white": (250, 250, 250),
}
QUESTIONS = {
    "bars": "Which bar in this chart is the tallest, counting from the left?",
    "stripes": "What colours are the stripes of this flag, from top to bottom?",
    "dot": "Where is the dot in this picture, and what colour is it?",
    "board": "How many squares does this board have?",
}

Pixel = tuple[int, int, int]


def png(width: int, height: int, pixels: list[list[Pixel]]) -> bytes:
    """An 8-bit RGB PNG of ``pixels`` (rows of (r, g, b))."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(v for px in row for v in px) for row in pixels)  # filter 0 on each row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def picture(kind: str, variant: int) -> bytes:
    """The PNG bytes of picture ``variant`` of ``kind`` (one of :data:`KINDS`); the same bytes every time."""
    rng = random.Random(f"{kind}-{variant}")
    colours = list(PALETTE.values())
    white = PALETTE["white"]
    grid = [[white] * WIDTH for _ in range(HEIGHT)]
    if kind == "bars":
        bars = rng.randint(3, 5)
        width = WIDTH // bars
        for b in range(bars):
            top = HEIGHT - rng.randint(4, HEIGHT - 2)
            colour = rng.choice(colours[:3])
            for y in range(top, HEIGHT):
                for x in range(b * width + 1, (b + 1) * width - 1):
                    grid[y][x] = colour
    elif kind == "stripes":
        stripes = rng.sample(colours, 3)
        grid = [[stripes[y * 3 // HEIGHT]] * WIDTH for y in range(HEIGHT)]
    elif kind == "dot":
        cx, cy = rng.randrange(8, WIDTH - 8), rng.randrange(8, HEIGHT - 8)
        r, colour = rng.randint(3, 7), rng.choice(colours[:4])
        for y in range(HEIGHT):
            for x in range(WIDTH):
                if (x - cx) ** 2 + (y - cy) ** 2 <= r * r:
                    grid[y][x] = colour
    else:
        n = rng.randint(2, 8)
        dark = rng.choice([*colours[:3], PALETTE["black"]])
        square = [[(x * n // WIDTH + y * n // HEIGHT) % 2 for x in range(WIDTH)] for y in range(HEIGHT)]
        grid = [[dark if odd else white for odd in row] for row in square]
    return png(WIDTH, HEIGHT, grid)


class ImageShelf:
    """Writes pictures under ``directory`` (once each, named by content) and hands out references to them.

    Without a directory nothing is written and references point under :data:`NOWHERE`; their sha256 is still
    the digest of the bytes the picture has.
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory.resolve() if directory is not None else None
        self.written: set[str] = set()

    def reference(self, rng: random.Random, broken: float) -> tuple[dict[str, Any], str, str | None]:
        """A reference to a picture, the question asked about it, and its fault (in :data:`IMAGE_FAULTS`) or None."""
        kind, variant = rng.choice(KINDS), rng.randrange(VARIANTS)
        data = picture(kind, variant)
        digest = hashlib.sha256(data).hexdigest()
        fault = rng.choice(IMAGE_FAULTS) if rng.random() < broken else None
        if fault == "missing file":
            name = f"missing-{kind}-{variant}.png"  # never written
        else:
            name = f"{kind}-{variant}-{digest[:16]}.png"
            self._write(name, data)
        if fault == "sha256 mismatch":
            digest = hashlib.sha256(data + b"\n").hexdigest()
        uri = (self.directory / name).as_uri() if self.directory is not None else NOWHERE + name
        return {"uri": uri, "sha256": digest, "media_type": "image/png"}, QUESTIONS[kind], fault

    def _write(self, name: str, data: bytes) -> None:
        if self.directory is None or name in self.written:
            return
        path = self.directory / name
        if not (path.is_file() and path.read_bytes() == data):
            self.directory.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{name}.{os.getpid()}.partial")
            partial.write_bytes(data)
            os.replace(partial, path)  # a reader never sees half a picture
        self.written.add(name)
