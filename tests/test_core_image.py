"""Part 1: image SVD from arrays, files and URLs, checked against numpy and PIL directly."""

from __future__ import annotations

import io
import json
import math
import socket
import threading

import numpy as np
import pytest
from PIL import Image

from hsviewer.core import HsviewerError, image_svd, load_image
from hsviewer.core.analyses.image import run as image_module
from tests.core_helpers import notebook_reconstruction
from tests.support import local_server, png_header_only

pytestmark = pytest.mark.usefixtures("no_proxy")  # the URL tests reach a local server directly

TO_DICT_KEYS = {
    "shape",
    "rank",
    "singular_values",
    "cumulative_percent",
    "components",
    "variance_kept",
    "reconstruction_rank",
    "frobenius_error",
}


def smooth_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth colour picture with some texture, as uint8 RGB."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [
            128 + 100 * np.sin(x / 7.0) * np.cos(y / 11.0),
            128 + 90 * np.cos((x + y) / 13.0),
            128 + 80 * np.sin(y / 5.0),
        ],
        axis=-1,
    )
    return np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)


def notebook_gray(path, factor: int) -> np.ndarray:
    """The notebook: PIL's "L" conversion as float, then [::f, ::f]."""
    return np.array(Image.open(path).convert("L"), dtype=float)[::factor, ::factor]


def smallest_k(s: np.ndarray, threshold: float) -> int:
    cum = 100 * np.cumsum(s**2) / np.sum(s**2)
    return int(np.flatnonzero(cum >= threshold - 1e-9)[0]) + 1


# --- arrays -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(40, 30), (30, 40), (25, 25)])
@pytest.mark.parametrize("k", [1, 5, 20])
def test_array_svd_against_numpy(shape, k):
    x = np.random.default_rng(1).random(shape) * 255
    result = image_svd(x, components=k)
    s = np.linalg.svd(x, compute_uv=False)
    recon = notebook_reconstruction(x, k)
    np.testing.assert_allclose(result.s, s, rtol=1e-10)
    np.testing.assert_array_equal(result.image, x)
    assert result.components == k
    assert result.rank == np.linalg.matrix_rank(x) == min(shape)
    np.testing.assert_allclose(result.reconstruction(), recon, atol=1e-8)
    assert result.reconstruction_rank() == np.linalg.matrix_rank(recon) == k
    assert result.frobenius_error() == pytest.approx(np.linalg.norm(x - recon), rel=1e-9)
    assert result.variance_kept() == pytest.approx(100 * np.sum(s[:k] ** 2) / np.sum(s**2), rel=1e-12)
    np.testing.assert_allclose(result.cumulative_percent, 100 * np.cumsum(s**2) / np.sum(s**2), rtol=1e-12)
    np.testing.assert_allclose(result.preview(k), recon, atol=1e-2)  # float32 display copy


def test_array_default_is_98_percent_smallest_k():
    x = np.random.default_rng(2).random((50, 40)) * 255
    s = np.linalg.svd(x, compute_uv=False)
    k = smallest_k(s, 98)
    result = image_svd(x)
    assert result.components == k
    assert result.variance_kept() >= 98
    assert result.variance_kept(k - 1) < 98


@pytest.mark.parametrize("variance", [50, 90, 99.5, 100])
def test_array_variance_threshold(variance):
    x = np.random.default_rng(3).random((30, 20))
    s = np.linalg.svd(x, compute_uv=False)
    assert image_svd(x, variance=variance).components == smallest_k(s, variance)


def test_low_rank_image_rank_and_components_above_it():
    rng = np.random.default_rng(4)
    x = rng.random((40, 4)) @ rng.random((4, 30)) * 50  # rank 4
    result = image_svd(x, components=3)
    assert result.rank == np.linalg.matrix_rank(x) == 4
    assert result.reconstruction_rank() == np.linalg.matrix_rank(result.reconstruction()) == 3
    assert image_svd(x, variance=100).components == 4
    assert image_svd(x, components=4).frobenius_error() == pytest.approx(0, abs=1e-8)
    with pytest.raises(HsviewerError, match="Components"):
        image_svd(x, components=5)
    with pytest.raises(HsviewerError, match="Components"):
        image_svd(x, components=0)


def test_components_win_over_variance():
    x = np.random.default_rng(5).random((20, 20))
    assert image_svd(x, components=2, variance=99).components == 2


def test_to_dict_keys_and_json():
    x = np.random.default_rng(6).random((20, 15)) * 255
    result = image_svd(x, components=4)
    d = result.to_dict()
    assert set(d) >= TO_DICT_KEYS
    assert d["shape"] == [20, 15]
    assert d["components"] == 4
    assert d["rank"] == 15
    assert len(d["singular_values"]) == len(d["cumulative_percent"]) == 15
    assert d["reconstruction_rank"] == 4
    assert d["variance_kept"] == pytest.approx(d["cumulative_percent"][3])
    s = np.linalg.svd(x, compute_uv=False)
    assert d["frobenius_error"] == pytest.approx(np.sqrt(np.sum(s[4:] ** 2)))
    json.dumps(d)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((5, 5)), np.zeros((0, 3)), np.zeros(5), np.zeros((3, 3, 3))],
    ids=["zeros", "empty", "1-D", "3-D"],
)
def test_bad_arrays(bad):
    with pytest.raises(HsviewerError):
        image_svd(bad)


def test_constant_image_is_rank_one():
    result = image_svd(np.full((4, 6), 7.0))
    assert result.rank == 1
    assert result.components == 1
    np.testing.assert_allclose(result.reconstruction(), 7.0)


def test_non_finite_array():
    x = np.ones((4, 4))
    x[1, 2] = np.nan
    with pytest.raises(HsviewerError):
        image_svd(x)


# --- files --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return smooth_rgb(61, 83)


@pytest.mark.parametrize("ext", ["png", "jpg", "bmp"])
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
@pytest.mark.parametrize("factor", [1, 2, 3])
def test_file_matches_notebook_gray_and_slicing(tmp_path, rgb, ext, mode, factor):
    img = Image.fromarray(rgb)
    if ext == "jpg" and mode in ("RGBA", "P"):
        pytest.skip("JPEG has no alpha or palette")
    img = img.convert(mode)
    path = tmp_path / f"picture.{ext}"
    img.save(path)
    expected = notebook_gray(path, factor)
    result = image_svd(path, downsample=factor, components=3)
    assert result.image.dtype == np.float64
    np.testing.assert_array_equal(result.image, expected)
    assert result.image.shape == (math.ceil(61 / factor), math.ceil(83 / factor))
    assert result.downsample == factor
    assert result.warnings == []
    np.testing.assert_allclose(result.s, np.linalg.svd(expected, compute_uv=False), rtol=1e-9)
    assert result.rank == np.linalg.matrix_rank(expected)
    assert result.source == str(path)


def test_default_downsample_is_two(tmp_path, rgb):
    path = tmp_path / "p.png"
    Image.fromarray(rgb).save(path)
    np.testing.assert_array_equal(image_svd(path).image, notebook_gray(path, 2))
    np.testing.assert_array_equal(load_image(str(path)).pixels, notebook_gray(path, 2))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", "x", None])
def test_bad_downsample(tmp_path, rgb, bad):
    path = tmp_path / "p.png"
    Image.fromarray(rgb).save(path)
    with pytest.raises(HsviewerError, match="Downsample"):
        image_svd(path, downsample=bad)


def test_large_image_is_downsampled_with_a_notice(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(smooth_rgb(120, 200)).save(path)
    loaded = load_image(path, downsample=2, max_side=50)
    assert loaded.downsample == 4  # 200 / 4 = 50
    np.testing.assert_array_equal(loaded.pixels, notebook_gray(path, 4))
    assert len(loaded.warnings) == 1
    assert "200 x 120" in loaded.warnings[0] and "4" in loaded.warnings[0]
    # within the limit: no notice
    assert load_image(path, downsample=4, max_side=50).warnings == []


def test_max_side_monkeypatched_reaches_image_svd(tmp_path, monkeypatch):
    path = tmp_path / "wide.png"
    Image.fromarray(smooth_rgb(120, 200)).save(path)
    monkeypatch.setattr(image_module, "MAX_SIDE", 40)
    result = image_svd(path, downsample=2, components=2)
    assert result.downsample == 5
    assert max(result.image.shape) <= 40
    assert result.warnings and "200 x 120" in result.warnings[0]
    np.testing.assert_array_equal(result.image, notebook_gray(path, 5))


def test_large_jpeg_notice_states_the_real_size_and_factor(tmp_path):
    # A JPEG more than twice over the limit is decoded at a reduced scale (draft): the notice and
    # the reported factor must still describe the file and the overall reduction.
    path = tmp_path / "big.jpg"
    Image.fromarray(smooth_rgb(800, 1000)).save(path)
    loaded = load_image(path, downsample=2, max_side=100)
    assert max(loaded.pixels.shape) <= 100
    assert "1000 x 800" in loaded.warnings[0]
    assert abs(loaded.pixels.shape[1] * loaded.downsample - 1000) < loaded.downsample
    assert abs(loaded.pixels.shape[0] * loaded.downsample - 800) < loaded.downsample
    assert str(loaded.downsample) in loaded.warnings[0]


def test_missing_file(tmp_path):
    with pytest.raises(HsviewerError, match="No image file"):
        image_svd(tmp_path / "nothing.png")


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(HsviewerError, match="No image file"):
        image_svd(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(HsviewerError, match="empty"):
        image_svd(path)


@pytest.mark.parametrize("name", ["corrupt.png", "corrupt.jpg", "corrupt.bin"])
def test_corrupt_bytes(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(HsviewerError, match="not an image"):
        image_svd(path)


def test_text_file_renamed_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("This is not a picture.\n" * 20)
    with pytest.raises(HsviewerError, match="not an image"):
        image_svd(path)


@pytest.mark.parametrize(("fmt", "ext"), [("PNG", "png"), ("JPEG", "jpg")])
def test_truncated_file(tmp_path, fmt, ext):
    buf = io.BytesIO()
    Image.fromarray(smooth_rgb(80, 90)).save(buf, fmt)
    data = buf.getvalue()
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(HsviewerError, match="damaged or truncated"):
        image_svd(path)


def test_crafted_decompression_bomb(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(100_000, 100_000))
    assert path.stat().st_size < 200
    with pytest.raises(HsviewerError, match="decompression bomb"):
        image_svd(path)


@pytest.mark.parametrize("limit", [1000, 2000], ids=["error-level", "warning-level"])
def test_decompression_bomb_by_pil_limit(tmp_path, monkeypatch, limit):
    # 50 x 50 = 2500 pixels: over 2 x 1000 is PIL's error; over 2000 but under 2 x 2000 is its warning.
    path = tmp_path / "moderate.png"
    Image.fromarray(smooth_rgb(50, 50)).save(path)
    assert image_svd(path, components=1).image.shape == (25, 25)  # fine under PIL's default limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(HsviewerError, match="decompression bomb"):
        image_svd(path)


# --- URLs ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(smooth_rgb(40, 50)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def server(png_bytes):
    routes = {
        "/picture.png": ("image/png", png_bytes),
        "/page.html": ("text/html; charset=utf-8", b"<html><body>hello</body></html>"),
        "/empty.png": ("image/png", b""),
        "/octet": ("application/octet-stream", png_bytes),
    }
    with local_server(routes) as url:
        yield url


@pytest.mark.parametrize("path", ["/picture.png", "/octet"])
def test_url_png(server, png_bytes, path):
    result = image_svd(server + path, downsample=2, components=2)
    expected = np.array(Image.open(io.BytesIO(png_bytes)).convert("L"), dtype=float)[::2, ::2]
    np.testing.assert_array_equal(result.image, expected)
    assert result.source == server + path


def test_url_404(server):
    with pytest.raises(HsviewerError, match="404"):
        image_svd(server + "/missing.png")


def test_url_html(server):
    with pytest.raises(HsviewerError, match="text/html"):
        image_svd(server + "/page.html")


def test_url_empty_body(server):
    with pytest.raises(HsviewerError, match="no data"):
        image_svd(server + "/empty.png")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_url_unreachable_port(monkeypatch):
    monkeypatch.setattr(image_module, "URL_TIMEOUT_S", (2.0, 2.0))
    url = f"http://127.0.0.1:{free_port()}/picture.png"
    with pytest.raises(HsviewerError, match="Could not reach") as info:
        image_svd(url)
    assert url in str(info.value) and "works offline with image files" in str(info.value)
    assert "ConnectionError" not in str(info.value)


def test_url_that_never_answers(monkeypatch):
    monkeypatch.setattr(image_module, "URL_TIMEOUT_S", (0.5, 0.5))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # the kernel accepts the connection; nobody ever answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/slow.png"
        with pytest.raises(HsviewerError, match="did not answer") as info:
            image_svd(url)
    assert url in str(info.value)


def test_url_too_large(server, monkeypatch):
    monkeypatch.setattr(image_module, "URL_MAX_BYTES", 100)
    with pytest.raises(HsviewerError, match="larger than"):
        image_svd(server + "/picture.png")


def test_url_that_stalls_after_the_headers(monkeypatch):
    monkeypatch.setattr(image_module, "URL_TIMEOUT_S", (0.5, 0.5))
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    done = threading.Event()

    def serve():
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n\x89PNG")
        done.wait(5)  # never sends the rest
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/stall.png"
    try:
        with pytest.raises(HsviewerError) as info:
            image_svd(url)
        assert url in str(info.value)
    finally:
        done.set()
        thread.join(5)
        listener.close()


def test_preview_equals_the_full_sigma_product_at_every_k():
    rng = np.random.default_rng(1)
    pixels = rng.random((30, 20)) * 255
    result = image_svd(pixels)
    u, s, vh = np.linalg.svd(pixels)
    for k in range(len(s) + 1):
        sigma = np.zeros_like(pixels)
        sigma[:k, :k] = np.diag(s[:k])
        preview = result.preview(k)
        assert preview.dtype == np.float32
        np.testing.assert_allclose(preview, u @ sigma @ vh, atol=1e-3)
