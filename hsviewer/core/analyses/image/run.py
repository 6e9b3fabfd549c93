"""Part 1 of the notebook: an image's SVD and its low-rank reconstructions."""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hsviewer.core import fields
from hsviewer.core.errors import HsviewerError
from hsviewer.core.linalg import lowrank

USER_AGENT = "hsviewer/0.1 (+https://pypi.org/project/hsviewer)"
URL_TIMEOUT_S = (5.0, 20.0)  # connect, read
URL_MAX_BYTES = 50 * 1024 * 1024
FILE_MAX_BYTES = 512 * 1024 * 1024  # a local file is refused before it is read
MAX_PIXELS = 2 * 89_478_485  # refused before decoding; Pillow's own decompression-bomb warning is half of this
MAX_SIDE = 1600  # larger images are downsampled further so the SVD stays interactive


@dataclass
class LoadedImage:
    pixels: np.ndarray  # grayscale, float64, after downsampling
    source: str
    downsample: int
    warnings: list[str] = field(default_factory=list)
    colour: str = ""  # the file's mode ('RGB', 'P'...) when its colour was dropped for greyscale


def load_image(source: str | Path, downsample: int = 2, max_side: int | None = None) -> LoadedImage:
    """Read a file or http(s) URL as grayscale floats (PIL's "L" mode), downsampled by slicing.

    An image with a side over max_side (MAX_SIDE unless given) after downsampling is
    downsampled further, with a notice.
    """
    if not lowrank.is_whole(downsample) or downsample < 1:
        raise HsviewerError(f"Downsample factor must be a whole number of at least 1; got {downsample!r}.")
    downsample = int(downsample)
    max_side = MAX_SIDE if max_side is None else max_side
    source = str(source)
    data = _fetch(source) if source.startswith(("http://", "https://")) else _read_file(source)
    notes: list[str] = []
    gray, (width, height), colour = _decode_gray(data, source, downsample, max_side, notes)
    draft = width / gray.shape[1]  # > 1 when a large JPEG was decoded at 1/2, 1/4 or 1/8 scale
    step = max(1, round(downsample / draft))
    while max(gray.shape[0] / step, gray.shape[1] / step) > max_side:
        step += 1
    factor = max(1, round(step * draft))  # the overall reduction of the file's pixels
    if factor != downsample:
        notes.append(
            f"Image is {width} x {height} pixels: downsampled by {factor} "
            f"instead of {downsample} to keep the SVD interactive."
        )
    pixels = np.asarray(gray, dtype=np.float64)[::step, ::step]
    return LoadedImage(np.ascontiguousarray(pixels), source, factor, notes, colour)


def _read_file(path: str) -> bytes:
    """The file's bytes, refused before reading when it is larger than FILE_MAX_BYTES."""
    p = Path(path)
    if not p.is_file():
        raise HsviewerError(f"No image file at {path}.")
    try:
        with p.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > FILE_MAX_BYTES:
                raise HsviewerError(_too_large(path, size))
            data = f.read(FILE_MAX_BYTES + 1)  # a file that grew (or a /proc file that claims 0 bytes)
    except OSError as e:
        raise HsviewerError(f"Could not read {path}: {e.strerror or e}.") from None
    if len(data) > FILE_MAX_BYTES:
        raise HsviewerError(_too_large(path, len(data)))
    if not data:
        raise HsviewerError(f"The image file {path} is empty.")
    return data


def _too_large(path: str, size: int) -> str:
    return f"The image file {path} is {size / 2**20:,.0f} MB; hsviewer reads images up to {FILE_MAX_BYTES // 2**20} MB."


def _fetch(url: str) -> bytes:
    import requests

    try:
        with requests.get(url, headers={"User-Agent": USER_AGENT}, timeout=URL_TIMEOUT_S, stream=True) as r:
            if r.status_code != 200:
                raise HsviewerError(f"{url} answered HTTP {r.status_code} {r.reason}.")
            chunks, size = [], 0
            for chunk in r.iter_content(1 << 16):
                size += len(chunk)
                if size > URL_MAX_BYTES:
                    raise HsviewerError(f"{url} is larger than {URL_MAX_BYTES // 2**20} MB.")
                chunks.append(chunk)
            kind = r.headers.get("Content-Type", "unknown type")
    except requests.Timeout:
        raise HsviewerError(f"{url} did not answer within {URL_TIMEOUT_S[1]:.0f} s.") from None
    except requests.ConnectionError:
        raise HsviewerError(
            f"Could not reach {url}: check the address and the network connection. hsviewer works offline "
            "with image files: open a file instead."
        ) from None
    except requests.RequestException as e:
        raise HsviewerError(f"Could not fetch {url}: {type(e).__name__}.") from None
    data = b"".join(chunks)
    if not data:
        raise HsviewerError(f"{url} returned no data.")
    if kind.startswith("text/"):
        raise HsviewerError(f"{url} returned {kind.split(';')[0]}, not an image.")
    return data


def _decode_gray(
    data: bytes, source: str, downsample: int, max_side: int, notes: list[str]
) -> tuple[np.ndarray, tuple[int, int], str]:
    """The grayscale pixels (possibly decoded at a reduced scale), the file's own width and height, and
    its mode when it had colour that the conversion dropped ('RGB'; '' for a grey image).

    8-bit images are converted by PIL ("L"). Images of more bits per channel are scaled
    to 0..255 by their own range, never clipped, with a note in `notes`.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            size = img.size
            if size[0] * size[1] > MAX_PIXELS:
                raise HsviewerError(
                    f"{source} claims {size[0]} x {size[1]} pixels, more than the {MAX_PIXELS:,} hsviewer "
                    "decodes (decompression bomb)."
                )
            if img.mode.startswith("I") or img.mode == "F":
                return _wide_gray(img, notes), size, ""
            colour = img.mode if _in_colour(img) else ""  # before draft(), which decodes a JPEG as L
            # JPEG can decode at a reduced scale: a 40-megapixel photo then loads at once.
            scale = max(img.width, img.height) / (max_side * downsample)
            if scale > 2:
                img.draft("L", (int(img.width / scale), int(img.height / scale)))
            return np.asarray(img.convert("L")), size, colour
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise HsviewerError(f"{source} claims too many pixels to be a real image (decompression bomb).") from None
    except Image.UnidentifiedImageError:
        raise HsviewerError(f"{source} is not an image format that can be read.") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise HsviewerError(f"{source} is damaged or truncated ({e}).") from None


def _in_colour(img: Any) -> bool:
    """Whether the image has colour that converting to greyscale drops (a palette of greys has none)."""
    if img.mode in ("P", "PA"):
        palette = np.asarray(img.getpalette() or [], dtype=np.int32).reshape(-1, 3)
        return bool((palette != palette[:, :1]).any())
    return len(set(img.getbands()) - {"A", "L", "P", "1"}) > 1


def _wide_gray(img: Any, notes: list[str]) -> np.ndarray:
    """A 16-bit, 32-bit integer or float image as floats in 0..255.

    16-bit modes (I;16...) are divided by their maximum, 65535. "I" and "F" have no fixed
    range: non-negative values are scaled by the largest (0 stays black), others mapped
    from their minimum..maximum.
    """
    values = np.asarray(img, dtype=np.float64)
    if values.ndim != 2:
        values = np.asarray(img.convert("F"), dtype=np.float64)
    if not np.isfinite(values).all():
        raise HsviewerError("The image holds NaN or infinite values.")
    if img.mode.startswith("I;16"):
        notes.append("16-bit image: scaled from 0..65535 to 0..255.")
        return values * (255.0 / 65535.0)
    kind = "floating-point" if img.mode == "F" else "32-bit integer"
    lo, hi = float(values.min()), float(values.max())
    if lo >= 0:
        notes.append(f"{kind} image: values 0..{hi:.6g} scaled to 0..255.")
        return values * (255.0 / hi) if hi > 0 else values
    notes.append(f"{kind} image: values {lo:.6g}..{hi:.6g} mapped to 0..255.")
    return (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)


@dataclass
class ImageSVD:
    """The SVD of one grayscale image, with one chosen reconstruction."""

    SCHEMA: ClassVar[int] = 1
    image: np.ndarray
    u: np.ndarray
    s: np.ndarray
    vh: np.ndarray
    components: int
    source: str = ""
    downsample: int = 1
    warnings: list[str] = field(default_factory=list)
    colour: str = ""  # the file's mode ('RGB', 'P'...) when its colour was dropped for greyscale
    _factors: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def rank(self) -> int:
        return lowrank.numerical_rank(self.s, self.image.shape)

    @property
    def cumulative_percent(self) -> np.ndarray:
        return lowrank.cumulative_percent(self.s)

    def variance_kept(self, k: int | None = None) -> float:
        k = self.components if k is None else k
        return float(self.cumulative_percent[k - 1]) if k > 0 else 0.0

    def reconstruction(self, k: int | None = None) -> np.ndarray:
        return lowrank.reconstruct(self.u, self.s, self.vh, self.components if k is None else k)

    def preview(self, k: int) -> np.ndarray:
        """A float32 rank-k reconstruction fast enough to follow a slider.

        Above half the rank the discarded components are subtracted from the image
        instead, so no k costs more than half of a full product.
        """
        if self._factors is None:
            us_t = np.ascontiguousarray((self.u * self.s).T, dtype=np.float32)  # r x rows
            image = np.ascontiguousarray(self.image, dtype=np.float32)
            self._factors = (us_t, np.ascontiguousarray(self.vh, dtype=np.float32), image)
        us_t, vh, image = self._factors
        rank = len(self.s)
        k = min(max(int(k), 0), rank)
        if k <= rank // 2:
            return us_t[:k].T @ vh[:k]
        return image - us_t[k:].T @ vh[k:]

    def reconstruction_rank(self, k: int | None = None) -> int:
        """Rank of the rank-k reconstruction: its nonzero kept singular values."""
        k = self.components if k is None else k
        return min(k, self.rank)

    def frobenius_error(self, k: int | None = None) -> float:
        """Eckart-Young: the error equals the root sum of the discarded s**2."""
        k = self.components if k is None else k
        return float(np.sqrt(np.sum(self.s[k:] ** 2)))

    def to_dict(self) -> dict[str, Any]:
        return {
            **fields.schema_of(type(self)),
            "source": self.source,
            "downsample": self.downsample,
            "shape": list(self.image.shape),
            "rank": self.rank,
            "singular_values": self.s.tolist(),
            "cumulative_percent": self.cumulative_percent.tolist(),
            "components": self.components,
            "variance_kept": self.variance_kept(),
            "reconstruction_rank": self.reconstruction_rank(),
            "frobenius_error": self.frobenius_error(),
            "warnings": list(self.warnings),
            "colour": self.colour,
        }


def _named(source: str) -> str:
    return "The image" if source in ("", "array") else f"The image {source}"


def image_svd(
    source: str | Path | np.ndarray,
    downsample: int = 2,
    components: int | None = None,
    variance: float | None = None,
) -> ImageSVD:
    """SVD of an image file, URL or array; k from a fixed count or a percent of variance (default 98%)."""
    if isinstance(source, np.ndarray):
        loaded = LoadedImage(np.asarray(source, dtype=np.float64), "array", 1)
    else:
        loaded = load_image(source, downsample)
    if loaded.pixels.ndim != 2 or min(loaded.pixels.shape) < 1:
        raise HsviewerError("An image must be a non-empty 2-D grayscale array.")
    if not np.isfinite(loaded.pixels).all():
        raise HsviewerError("An image must not contain NaN or infinite values.")
    if not loaded.pixels.any():
        raise HsviewerError(f"{_named(loaded.source)} is blank (every pixel is 0): it has no variance to decompose.")
    u, s, vh = lowrank.svd(loaded.pixels)
    k = lowrank.choose_components(s, 98.0 if variance is None else variance, components)
    return ImageSVD(loaded.pixels, u, s, vh, k, loaded.source, loaded.downsample, loaded.warnings, loaded.colour)
