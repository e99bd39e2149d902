"""``discinvert serve``: the JSON API through FastAPI's test client and a real uvicorn server, uploads, limits, concurrency.

The page itself, in a real browser: ``tests/test_web_browser.py``.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
import safetensors.torch
import torch
from fastapi.testclient import TestClient
from PIL import Image

from discinvert import fit_inverter, zoo
from discinvert.directions import learn_directions
from discinvert.edit import attribute_direction, class_directions
from discinvert.metrics import image_quality
from discinvert.optimize import optimize_latents
from discinvert.web import Examples, Limits, WebSession, create_app, start
from discinvert.web.sources import directions_from_file, directions_from_folders, examples_from
from discinvert.web.uploads import read_upload
from tests.conftest import assert_untouched, hook_counts, snapshot

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- helpers
def _png(array: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    (Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)).save(buffer, format=fmt)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` pixels but holds almost no data (a decompression bomb's shape)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")


def _decode_data_url(url: str) -> np.ndarray:
    import base64

    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def _model_range(picture: np.ndarray) -> torch.Tensor:
    """uint8 pixels as the session maps them onto G's [-1, 1] (float32 all the way)."""
    return torch.from_numpy(-1.0 + 2.0 * (picture.astype(np.float32) / 255.0))


def _unit(images: torch.Tensor) -> np.ndarray:
    return np.clip(np.rint((images.numpy() + 1) / 2 * 255), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- the zoo session
@pytest.fixture(scope="module")
def zoo_session():
    from discinvert.web.sources import zoo_examples

    G, D, inverter = zoo.load(inverter="real-images")
    before, hooks = snapshot(G, D), hook_counts(D)
    examples, images, labels, names = zoo_examples("dcgan-fashion-mnist", inverter)
    directions = learn_directions(inverter, images, labels, names=names, seed=0)  # as discinvert serve does
    session = WebSession(inverter, description="zoo DCGAN", examples=examples, directions=directions,
                         limits=Limits(max_upload_bytes=200_000, max_refine_steps=40, max_frames=12))
    yield session, images, G, D
    assert_untouched(before, G, D)
    assert hook_counts(D) == hooks


@pytest.fixture(scope="module")
def client(zoo_session):
    with TestClient(create_app(zoo_session[0])) as test_client:
        yield test_client


def test_info_describes_the_gan_the_examples_and_the_directions(client, zoo_session) -> None:
    info = client.get("/api/info").json()
    assert info["image_shape"] == [1, 28, 28] and info["latent_shape"] == [100, 1, 1]
    assert info["iterations"] == zoo_session[0].inverter.iterations == 2
    assert info["examples"] == 1000 and len(info["example_labels"]) == 1000
    assert info["directions"] == list(zoo.label_names())
    [group] = info["direction_groups"]
    assert group["method"] == "labels" and group["space"] == "z" and group["amounts"] == "spreads"
    accuracy = group["details"]["Trouser"]["holdout_balanced_accuracy"]
    assert 0.5 < accuracy <= 1 and group["details"]["Trouser"]["positives"] == 100  # 100 test pictures per class
    assert info["typical_set"]["mass"] == 0.999
    assert info["limits"]["max_upload_bytes"] == 200_000 and info["value_range"] == [-1.0, 1.0]


def test_reconstruct_an_example_answers_the_library_s_codes_and_metric(client, zoo_session) -> None:
    session, images, _, _ = zoo_session
    answer = client.post("/api/reconstruct", data={"example": "7"}).json()
    x = images[7:8]
    codes = session.inverter.encode(x)
    assert torch.equal(torch.tensor(answer["code"]).reshape(codes.shape), codes)  # every step network ran
    psnr, ssim = image_quality(x, session.inverter.reconstruct(x))
    assert answer["psnr"] == pytest.approx(psnr[0], abs=1e-9) and answer["ssim"] == pytest.approx(ssim[0], abs=1e-9)
    assert np.array_equal(_decode_data_url(answer["original"]), _unit(x)[0, 0])
    assert np.array_equal(_decode_data_url(answer["reconstruction"]), _unit(session.inverter.reconstruct(x))[0, 0])
    assert answer["notes"] == [] and answer["seconds"] > 0 and answer["iterations"] == 2


def test_an_uploaded_png_of_g_s_shape_is_taken_as_it_is(client, zoo_session) -> None:
    session, images, _, _ = zoo_session
    picture = _unit(images[3:4])[0, 0]
    answer = client.post("/api/reconstruct", files={"image": ("shoe.png", _png(picture), "image/png")}).json()
    assert answer["notes"] == []
    assert torch.equal(torch.tensor(answer["code"]).reshape(1, 100, 1, 1),
                       session.inverter.encode(_model_range(picture)[None, None]))


def test_a_one_bit_png_upload_is_read_as_black_and_white_pixels(client, zoo_session) -> None:
    """A 1-bit PNG (Pillow mode "1") means 0 and 255: black → -1 and white → 1 for the tanh G, not 0.0 and 1.0."""
    session, images, _, _ = zoo_session
    mask = _unit(images[3:4])[0, 0] > 100
    data = _png(mask)
    assert Image.open(io.BytesIO(data)).mode == "1"
    assert np.array_equal(read_upload(data, (1, 28, 28), max_bytes=10_000, max_pixels=10_000).pixels[0], mask)
    answer = client.post("/api/reconstruct", files={"image": ("mask.png", data, "image/png")}).json()
    assert answer["notes"] == [] and np.array_equal(_decode_data_url(answer["original"]), mask.astype(np.uint8) * 255)
    assert torch.equal(torch.tensor(answer["code"]).reshape(1, 100, 1, 1),
                       session.inverter.encode(_model_range(mask.astype(np.uint8) * 255)[None, None]))


@pytest.mark.parametrize("case", ["rgb-jpeg-wide", "rgba-png", "palette-png", "tall-gray"])
def test_other_pictures_are_converted_and_every_change_is_named(client, case) -> None:
    rng = np.random.default_rng(0)
    if case == "rgb-jpeg-wide":
        data, expected = _png(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8), fmt="JPEG"), [
            "averaged RGB to grayscale", "cropped the centre 60x60 of 90x60", "resized 60x60 to 28x28"]
    elif case == "rgba-png":
        data, expected = _png(rng.integers(0, 255, (28, 28, 4), dtype=np.uint8)), [
            "dropped the alpha channel", "averaged RGB to grayscale"]
    elif case == "palette-png":
        data, expected = _png(rng.integers(0, 255, (28, 28, 3), dtype=np.uint8), mode="P"), ["averaged RGB to grayscale"]
    else:
        data, expected = _png(rng.integers(0, 255, (100, 40), dtype=np.uint8)), [
            "cropped the centre 40x40 of 40x100", "resized 40x40 to 28x28"]
    response = client.post("/api/reconstruct", files={"image": ("x", data, "application/octet-stream")})
    assert response.status_code == 200, response.text
    assert response.json()["notes"] == expected
    assert _decode_data_url(response.json()["original"]).shape == (28, 28)


def test_a_grayscale_upload_becomes_rgb_for_a_colour_g() -> None:
    prepared = read_upload(_png(np.full((5, 5), 200, np.uint8)), (3, 10, 10), max_bytes=10_000, max_pixels=10_000)
    assert prepared.pixels.shape == (3, 10, 10) and prepared.notes == ["repeated grayscale to RGB", "resized 5x5 to 10x10"]
    assert np.allclose(prepared.pixels, 200 / 255, atol=1 / 255)


def _apng() -> bytes:
    frames = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (0, 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="PNG", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


@pytest.mark.parametrize("name, data, status, words", [
    ("text", b"hello, not a picture", 415, "expected a PNG or JPEG file, got text beginning 'hello, not a picture'."),
    ("empty", b"", 400, "empty upload"),
    ("gif", None, 415, "expected a PNG or JPEG file, got a GIF image."),
    ("damaged png header", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, 400, "unreadable PNG"),
    ("too many bytes", bytes(150_000) + b"x" * 60_000, 413, "expected at most 200,000 bytes"),
    ("bomb header", _png_header_only(5000, 5000), 413, "5000x5000 pixels"),
    ("bomb beyond Pillow's guard", _png_header_only(40000, 40000), 413, "too large to decode"),
    ("truncated", _png(np.zeros((28, 28), np.uint8))[:-30], 400, "unreadable PNG"),
    ("cmyk jpeg", None, 422, "'CMYK' (4 channel(s) CMYK)"),
    ("16-bit png", None, 422, "'I;16'"),
    ("animated png", _apng(), 400, "animated PNG with 2 frames"),
])
def test_bad_uploads_get_a_4xx_json_error_that_names_the_problem(client, name, data, status, words) -> None:
    if name == "gif":
        buffer = io.BytesIO()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, format="GIF")
        data = buffer.getvalue()
    elif name == "cmyk jpeg":
        buffer = io.BytesIO()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).convert("CMYK").save(buffer, format="JPEG")
        data = buffer.getvalue()
    elif name == "16-bit png":
        buffer = io.BytesIO()
        Image.fromarray(np.full((8, 8), 4000, np.uint16)).save(buffer, format="PNG")
        data = buffer.getvalue()
    response = client.post("/api/reconstruct", files={"image": ("upload", data, "application/octet-stream")})
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


@pytest.mark.parametrize("request_kwargs, status, words", [
    ({"data": {"steps": "3"}}, 400, "got neither"),
    ({}, 400, "got Content-Type 'none'"),
    ({"data": {"image": "text"}}, 400, "got a text field"),
    ({"data": {"example": "1000"}}, 404, "from 0 to 999"),
    ({"data": {"example": "-1"}}, 404, "from 0 to 999"),
    ({"data": {"example": "two"}}, 422, "example: expected an integer"),
    ({"content": b"{}", "headers": {"Content-Type": "application/json"}}, 400,
     "expected a multipart/form-data body with a field 'image'"),
])
def test_bad_forms_get_a_4xx_json_error(client, request_kwargs, status, words) -> None:
    response = client.post("/api/reconstruct", **request_kwargs)
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_bodies_past_the_limit_are_refused_without_being_read_whole(client) -> None:
    declared = client.post("/api/reconstruct", content=b"x" * 300_000, headers={"Content-Type": "multipart/form-data"})
    assert declared.status_code == 413 and "300,000 bytes" in declared.json()["error"]

    def chunked():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"x" * 10_000

    streamed = client.post("/api/edit", content=chunked(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413 and "request body over" in streamed.json()["error"]


def test_unknown_paths_and_traversal_get_404_json(client) -> None:
    for path in ("/nope", "/api/nope", "/static/../discinvert/web/app.py", "/static/..%2f..%2fpyproject.toml",
                 "/static/%2e%2e/%2e%2e/pyproject.toml", "/api/examples/abc.png"):
        response = client.get(path)
        assert response.status_code in (404, 422), (path, response.status_code)
        assert "error" in response.json()
    assert client.get("/static/app.js").status_code == 200 and "api" in client.get("/static/app.js").text
    page = client.get("/")
    assert page.status_code == 200 and "<title>discinvert</title>" in page.text
    assert not re.search(r"(src|href)=\"https?://", page.text), "the page must not fetch anything from the internet"


def test_example_pictures_are_served_as_png(client, zoo_session) -> None:
    response = client.get("/api/examples/5.png")
    assert response.headers["content-type"] == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(response.content))), _unit(zoo_session[1][5:6])[0, 0])


def test_edit_adds_the_label_directions_in_spreads_to_the_code(client, zoo_session) -> None:
    session, images, _, _ = zoo_session
    code = client.post("/api/reconstruct", data={"example": "0"}).json()["code"]
    plain = client.post("/api/edit", json={"code": code, "amounts": {}}).json()
    z = torch.tensor(code).reshape(1, 100, 1, 1)
    assert np.array_equal(_decode_data_url(plain["image"]), _unit(session.inverter.decode(z))[0, 0])
    edited = client.post("/api/edit", json={"code": code, "amounts": {"Trouser": 1.5, "Bag": -0.5}}).json()
    expected = z + 1.5 * session.directions["Trouser"] - 0.5 * session.directions["Bag"]
    assert torch.allclose(torch.tensor(edited["code"]).reshape(expected.shape), expected, atol=1e-6)
    assert not np.array_equal(_decode_data_url(edited["image"]), _decode_data_url(plain["image"]))
    # the zoo's sliders are its label direction set's vectors: scale (one spread of the prior) times direction
    [labels] = session.direction_sets
    assert labels.method == "labels" and labels.names == tuple(zoo.label_names())
    assert torch.equal(session.directions["Trouser"], labels.scales[1] * labels.directions[1])
    assert edited["typical"]["norm"] == pytest.approx(float(labels.mahalanobis(expected)[0]), rel=1e-6)
    # a one-vs-rest classifier of Trouser codes points the way of the class-mean difference
    _, label_ids = zoo.load_test_images()
    trouser = torch.from_numpy(label_ids == 1)
    codes = session.inverter.encode(images)
    mean_difference = (codes[trouser].mean(0) - codes[~trouser].mean(0)).flatten()
    assert float(torch.nn.functional.cosine_similarity(labels.directions[1].flatten(), mean_difference, dim=0)) > 0.5


@pytest.mark.parametrize("body, words", [
    ({"code": [0.0] * 99, "amounts": {}}, "expected a list of 100 finite numbers"),
    ({"code": "x", "amounts": {}}, "expected a list of 100 finite numbers"),
    ({"code": [0.0] * 100, "amounts": {"Hat": 1}}, "unknown direction(s) ['Hat']"),
    ({"code": [0.0] * 100, "amounts": {"Bag": 11}}, "expected a number from -10 to 10"),
    ({"code": [0.0] * 100, "amounts": {"Bag": "1"}}, "expected a number from -10 to 10"),
    ({"code": [0.0] * 100, "amounts": [1]}, "amounts: expected an object"),
])
def test_bad_edits_get_422(client, body, words) -> None:
    response = client.post("/api/edit", json=body)
    assert response.status_code == 422 and words in response.json()["error"], response.text


def test_non_finite_and_non_json_bodies_are_refused(client) -> None:
    nan_code = "[" + ",".join(["NaN"] + ["0"] * 99) + "]"
    response = client.post("/api/edit", content=f'{{"code": {nan_code}, "amounts": {{}}}}',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and "finite" in response.json()["error"]
    assert client.post("/api/edit", content=b"not json").status_code == 400
    array = client.post("/api/edit", json=[1, 2])
    assert array.status_code == 400 and "got a JSON list" in array.json()["error"]


def test_a_refused_upload_says_what_came_without_repeating_itself(client) -> None:
    response = client.post("/api/reconstruct", files={"image": ("notes.png", b"these are notes", "image/png")})
    assert response.json() == {"error": "expected a PNG or JPEG file, got text beginning 'these are notes'."}
    binary = client.post("/api/reconstruct", files={"image": ("x.png", bytes(range(7, 40)), "image/png")})
    assert binary.json()["error"] == "expected a PNG or JPEG file, got a file of another kind (its first bytes are " \
                                     "07 08 09 0a 0b 0c 0d 0e)."


def _png_with_chunk(kind: bytes, payload: bytes, after_pixels: bool = False, copies: int = 1) -> bytes:
    """A valid 8x8 PNG with ``copies`` more chunks before (or after) its pixels."""
    png = _png(np.zeros((8, 8), np.uint8))
    at = png.index(b"IEND") - 4 if after_pixels else 33  # 33: the signature and IHDR
    return png[:at] + _chunk(kind, payload) * copies + png[at:]


@pytest.mark.parametrize("kind, after_pixels", [(b"zTXt", False), (b"iCCP", False), (b"iTXt", False),
                                                (b"zTXt", True)])
def test_a_png_with_a_decompression_bomb_in_its_metadata_gets_413(client, kind, after_pixels) -> None:
    bomb = zlib.compress(b"\0" * 20_000_000, 9)  # 20 KB that inflate to 20 MB
    payload = {b"zTXt": b"comment\0\0", b"iCCP": b"icc\0\0", b"iTXt": b"comment\0\1\0\0\0"}[kind] + bomb
    data = _png_with_chunk(kind, payload, after_pixels)
    response = client.post("/api/reconstruct", files={"image": ("bomb.png", data, "image/png")})
    assert response.status_code == 413, response.text
    assert response.json()["error"].startswith("a PNG whose compressed metadata (a zTXt/iTXt text or an iCCP colour "
                                               "profile chunk) inflates past Pillow's limit of 1,048,576 bytes, a "
                                               "decompression bomb")


def test_a_png_whose_text_chunks_together_inflate_past_64_mb_gets_413(client) -> None:
    each = b"comment\0\0" + zlib.compress(b"\0" * 1_000_000, 9)  # under Pillow's 1 MB per chunk
    data = _png_with_chunk(b"zTXt", each, copies=70)  # 70 MB of text in 70 KB
    response = client.post("/api/reconstruct", files={"image": ("bomb.png", data, "image/png")})
    assert response.status_code == 413, response.text
    assert response.json()["error"].startswith("a PNG whose text chunks together inflate past Pillow's limit of "
                                               "67,108,864 bytes, a decompression bomb")


@pytest.mark.parametrize("path", ["/api/edit", "/api/interpolate", "/api/code.npy"])
def test_json_nested_100000_deep_gets_a_400_json_error(client, path) -> None:
    response = client.post(path, content="[" * 100_000 + "]" * 100_000, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.headers["content-type"] == "application/json"
    assert response.json()["error"].startswith("expected a JSON object as the request body, got JSON nested too deeply")
    inside = client.post(path, content='{"code": ' + "[" * 100_000 + "]" * 100_000 + "}",
                         headers={"Content-Type": "application/json"})
    assert inside.status_code == 400 and "nested too deeply" in inside.json()["error"]


def test_a_400_digit_integer_amount_is_refused(client) -> None:
    body = '{"code": [%s], "amounts": {"Bag": %s}}' % (",".join(["0"] * 100), "9" * 400)
    response = client.post("/api/edit", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "amounts['Bag']: expected a number from -10 to 10, got " + "9" * 39 + "…."


def test_a_code_holding_a_400_digit_integer_is_refused(client) -> None:
    body = '{"code": [%s], "amounts": {}}' % ",".join(["1"] * 99 + ["-" + "9" * 400])
    for path in ("/api/edit", "/api/code.npy"):
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, response.text
        assert "got -99999" in response.json()["error"] and "at [99] (not finite in float32" in response.json()["error"]


@pytest.mark.parametrize("code, words", [
    (["1"] * 100, "got a string at [0]: '1'."),
    ([True] * 100, "got a boolean at [0]: True."),
    ([[0.0]] * 100, "got an array at [0]: [0.0]."),
    ([0.0] * 99 + [None], "got null at [99]: None."),
    ({"0": 1.0}, "got an object."),
    ([0.0] * 99 + [1e39], "got 1e+39 at [99] (not finite in float32"),
])
def test_a_code_that_is_not_a_list_of_numbers_is_refused(client, code, words) -> None:
    for path, body in (("/api/edit", {"code": code, "amounts": {}}), ("/api/code.npy", {"code": code}),
                       ("/api/interpolate", {"code_a": [0.0] * 100, "code_b": code})):
        response = client.post(path, json=body)
        assert response.status_code == 422, (path, response.text)
        name, error = "code_b" if path == "/api/interpolate" else "code", response.json()["error"]
        assert error.startswith(f"{name}: expected a list of 100 finite numbers (latent shape (100, 1, 1)), ")
        assert words in error


@pytest.mark.parametrize("method", ["slerp", "linear"])
def test_an_interpolation_between_codes_of_3e38_gets_a_422(client, method) -> None:
    response = client.post("/api/interpolate", json={"code_a": [3e38] * 100, "code_b": [-3e38] * 100, "method": method})
    assert response.status_code == 422, response.text
    expected = {"slerp": "code_a, code_b: expected codes whose slerp path stays finite in torch.float32",
                "linear": "code_a, code_b: expected codes G can decode, got codes for which G's pictures hold NaN"}
    assert response.json()["error"].startswith(expected[method])


def test_an_edit_of_a_code_of_3e38_gets_a_422(client) -> None:
    response = client.post("/api/edit", json={"code": [3e38] * 100, "amounts": {"Bag": 10}})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == ("code: expected codes G can decode, got codes for which G's pictures hold NaN "
                                        "or Inf (codes far outside G's latent prior).")


def test_validation_errors_say_in_plain_words_what_was_expected(client) -> None:
    response = client.get("/api/examples/abc.png")
    assert response.status_code == 422
    assert response.json() == {"error": "index: expected an integer, got 'abc'."}
    for internal in ("loc", "'type'", "url", "'input'", "int_parsing", "Input should"):
        assert internal not in response.text
    huge = client.get("/api/examples/" + "9" * 5000 + ".png")
    assert huge.status_code == 422 and huge.json() == {"error": "index: expected an integer, got '" + "9" * 38 + "…."}


def test_a_bug_in_the_server_still_answers_json_and_logs_the_traceback(zoo_session, caplog) -> None:
    class Broken(WebSession):
        def info(self) -> dict:
            raise RuntimeError("a bug")

    session = zoo_session[0]
    broken = Broken(session.inverter, description="broken")
    with TestClient(create_app(broken), raise_server_exceptions=False) as test_client:
        response = test_client.get("/api/info")
    assert response.status_code == 500 and response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "internal error (RuntimeError); the server's log has the details."}
    assert any(record.exc_info and "GET /api/info failed" in record.getMessage() for record in caplog.records)


def test_a_bug_during_a_refinement_stream_reaches_the_handlers_as_itself_not_an_exception_group(zoo_session, caplog) -> None:
    """anyio 4 wraps what a task group's body raises in an ExceptionGroup; the refinement's stream unwraps it,
    so the app's handlers (which match by type) and the server's log see the bug itself."""
    class Broken(WebSession):
        def refine(self, image, steps, every, stop=None):  # type: ignore[no-untyped-def]
            def events():
                yield {"step": 0, "steps": steps}
                raise RuntimeError("a bug in the middle of a refinement")
            return events()

    session = zoo_session[0]
    broken = Broken(session.inverter, description="broken", examples=session.examples)
    with TestClient(create_app(broken)) as test_client:
        with pytest.raises(RuntimeError, match="a bug in the middle of a refinement") as raised:
            with test_client.stream("POST", "/api/refine", data={"example": "0", "steps": "5"}) as response:
                list(response.iter_lines())
    assert type(raised.value) is RuntimeError
    logged = [r for r in caplog.records if r.exc_info and "POST /api/refine failed" in r.getMessage()]
    assert logged and type(logged[0].exc_info[1]) is RuntimeError


def test_the_page_and_its_assets_name_no_other_host_and_there_is_no_api_docs(client) -> None:
    """Everything comes from this machine: no CDN-backed /api/docs, no http(s):// URL in the page's files."""
    assert client.get("/api/docs").status_code == 404 and client.get("/api/redoc").status_code == 404
    assert client.get("/api/openapi.json").json()["info"]["title"] == "discinvert"
    for path in ("/", "/static/app.js", "/static/style.css"):
        text = client.get(path).text
        assert not re.findall(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text, flags=re.IGNORECASE), path
        assert "/api/docs" not in text, path


def test_interpolate_decodes_the_path_between_two_codes(client, zoo_session) -> None:
    session = zoo_session[0]
    a = client.post("/api/reconstruct", data={"example": "0"}).json()["code"]
    b = client.post("/api/reconstruct", data={"example": "1"}).json()["code"]
    answer = client.post("/api/interpolate", json={"code_a": a, "code_b": b, "frames": 5, "method": "linear"}).json()
    assert len(answer["images"]) == 5
    ends = session.inverter.decode(torch.tensor([a, b]).reshape(2, 100, 1, 1))
    assert np.array_equal(_decode_data_url(answer["images"][0]), _unit(ends)[0, 0])
    assert np.array_equal(_decode_data_url(answer["images"][-1]), _unit(ends)[1, 0])
    for body, words in (({"code_a": a, "code_b": b, "frames": 13}, "frames: expected 2 to 12"),
                        ({"code_a": a, "code_b": b, "frames": 1}, "frames: expected 2 to 12"),
                        ({"code_a": a, "code_b": b, "method": "cubic"}, "method: expected 'linear' or 'slerp'"),
                        ({"code_a": a}, "code_b: expected a list of 100")):
        response = client.post("/api/interpolate", json=body)
        assert response.status_code == 422 and words in response.json()["error"], response.text


def test_the_code_downloads_as_npy(client) -> None:
    code = client.post("/api/reconstruct", data={"example": "2"}).json()["code"]
    response = client.post("/api/code.npy", json={"code": code})
    assert 'filename="code.npy"' in response.headers["content-disposition"]
    array = np.load(io.BytesIO(response.content))
    assert array.shape == (100, 1, 1) and array.dtype == np.float32
    assert np.array_equal(array.reshape(-1), np.asarray(code, np.float32))


def test_refine_streams_progress_and_ends_with_refine_s_codes(client, zoo_session) -> None:
    session, images, _, _ = zoo_session
    with client.stream("POST", "/api/refine", data={"example": "4", "steps": "12", "every": "5"}) as response:
        assert response.headers["content-type"].startswith("application/x-ndjson")
        events = [json.loads(line) for line in response.iter_lines() if line]
    assert [e["step"] for e in events] == [0, 5, 10, 12, 12] and events[-1]["done"]
    assert all(not e.get("done") for e in events[:-1])
    expected = session.inverter.refine(images[4:5], 12)
    assert torch.equal(torch.tensor(events[-1]["code"]).reshape(expected.shape), expected)
    start = session.inverter.reconstruct(images[4:5])
    assert np.array_equal(_decode_data_url(events[0]["reconstruction"]), _unit(start)[0, 0])  # step 0: encode's codes
    psnr, _ = image_quality(images[4:5], session.inverter.decode(expected))
    assert events[-1]["psnr"] == pytest.approx(psnr[0]) and events[-1]["psnr"] >= events[0]["psnr"]
    for form, words in (({"example": "4", "steps": "41"}, "steps: expected 1 to 40"),
                        ({"example": "4", "steps": "10", "every": "11"}, "every: expected 1 to steps (10)"),
                        ({"example": "4", "steps": "x"}, "steps: expected an integer")):
        response = client.post("/api/refine", data=form)
        assert response.status_code == 422 and words in response.json()["error"], response.text


def test_optimize_latents_callback_sees_every_step_s_best_codes(make_gan) -> None:
    gan = make_gan("dcgan")
    _, x, _ = gan.sample(5)
    init = torch.zeros(5, *gan.latent_shape)
    seen: list[tuple[int, int, torch.Tensor]] = []
    out = optimize_latents(gan.generator, x, init, steps=6, batch_size=3, callback=lambda s, k, c: seen.append((s, k, c)))
    assert [(s, k) for s, k, _ in seen] == [(0, k) for k in range(7)] + [(3, k) for k in range(7)]
    assert torch.equal(seen[6][2], out[:3]) and torch.equal(seen[-1][2], out[3:])
    assert torch.equal(seen[0][2], init[:3])
    assert torch.equal(out, optimize_latents(gan.generator, x, init, steps=6, batch_size=3))


# ----------------------------------------------------------------------------- a user's GAN, a real server
@pytest.fixture
def user_gan(make_gan):
    gan = make_gan("dcgan")  # BatchNorm, inplace activations, handed over in train mode
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                            steps=30, batch_size=16, cn_hidden=(16,), progress=False, validation_size=16, seed=0)
    return gan, inverter


def test_eight_concurrent_requests_get_their_own_answers_and_g_and_d_stay_untouched(user_gan) -> None:
    gan, inverter = user_gan
    before = snapshot(gan.generator, gan.discriminator)
    hooks = hook_counts(gan.discriminator)
    _, x, _ = gan.sample(8)
    pictures = np.clip(np.rint((x.numpy() + 1) / 2 * 255), 0, 255).astype(np.uint8)
    session = WebSession(inverter, description="tiny", examples=Examples(pictures),
                         directions={"up": torch.ones(gan.latent_shape)}, limits=Limits(queue=8))
    running = start(create_app(session))
    try:
        expected = [inverter.encode(_model_range(p)[None]) for p in pictures]
        answers: dict[int, dict] = {}
        barrier = threading.Barrier(8)

        def ask(i: int) -> None:
            barrier.wait()
            files = {"image": (f"{i}.png", _png(pictures[i, 0]), "image/png")}
            answers[i] = httpx.post(running.url + "api/reconstruct", files=files, timeout=60).json()

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i in range(8):
            assert torch.equal(torch.tensor(answers[i]["code"]).reshape(expected[i].shape), expected[i]), i
        edited = httpx.post(running.url + "api/edit", json={"code": answers[0]["code"], "amounts": {"up": 0.5}}).json()
        assert len(edited["code"]) == 8
    finally:
        running.stop()
    assert_untouched(before, gan.generator, gan.discriminator)
    assert hook_counts(gan.discriminator) == hooks
    assert gan.generator.training and gan.discriminator.training


def test_a_full_queue_answers_503_and_a_dropped_refinement_gives_its_place_back(user_gan) -> None:
    gan, inverter = user_gan
    before = snapshot(gan.generator, gan.discriminator)
    _, x, _ = gan.sample(1)
    pictures = np.clip(np.rint((x.numpy() + 1) / 2 * 255), 0, 255).astype(np.uint8)
    session = WebSession(inverter, description="tiny", examples=Examples(pictures),
                         limits=Limits(queue=0, max_refine_steps=100_000))
    running = start(create_app(session))
    try:
        with httpx.Client(timeout=60) as http:
            with http.stream("POST", running.url + "api/refine", data={"example": "0", "steps": "100000",
                                                                      "every": "1"}) as stream:
                # The line iterator is kept: dropped, its collection (whenever the cyclic GC runs) may close the
                # stream, and the server would rightly end the refinement and free the place before the next request.
                lines = stream.iter_lines()
                first = next(lines)  # the refinement runs and holds the only place
                assert json.loads(first)["step"] == 0
                busy = http.post(running.url + "api/reconstruct", data={"example": "0"})
                assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
                assert "busy" in busy.json()["error"]
            # the page stopped reading: the refinement ends and the place comes back
            for _ in range(100):
                answer = http.post(running.url + "api/reconstruct", data={"example": "0"})
                if answer.status_code == 200:
                    break
                threading.Event().wait(0.1)
            assert answer.status_code == 200
    finally:
        running.stop()
    assert_untouched(before, gan.generator, gan.discriminator)


def test_a_refinement_whose_page_disconnects_ends_at_once_not_at_its_next_line(user_gan) -> None:
    """The page's Stop (or a new picture) drops the connection between two progress lines that are
    100,000 steps apart: the refinement ends at its next step and the models serve the next request."""
    gan, inverter = user_gan
    before = snapshot(gan.generator, gan.discriminator)
    _, x, _ = gan.sample(1)
    pictures = np.clip(np.rint((x.numpy() + 1) / 2 * 255), 0, 255).astype(np.uint8)
    session = WebSession(inverter, description="tiny", examples=Examples(pictures),
                         limits=Limits(max_refine_steps=100_000))
    running = start(create_app(session))

    def refining() -> bool:
        return any(t.name == "discinvert-refine" and t.is_alive() for t in threading.enumerate())

    try:
        with httpx.Client(timeout=60) as http:
            with http.stream("POST", running.url + "api/refine", data={"example": "0", "steps": "100000",
                                                                      "every": "100000"}) as stream:
                assert json.loads(next(stream.iter_lines()))["step"] == 0
                assert refining()
            deadline = time.monotonic() + 10
            while refining() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not refining(), "the refinement kept the models after its page went away"
            answer = http.post(running.url + "api/reconstruct", data={"example": "0"}, timeout=10)
            assert answer.status_code == 200
    finally:
        running.stop()
    assert_untouched(before, gan.generator, gan.discriminator)


def test_sessions_refuse_what_the_page_cannot_show(make_gan) -> None:
    flat = make_gan("mlp")  # G makes flat vectors
    inverter = fit_inverter(flat.generator, flat.discriminator, flat.feature_layer, latent_shape=flat.latent_shape,
                            steps=5, batch_size=8, cn_hidden=(8,), progress=False, validation_size=8, seed=0)
    with pytest.raises(ValueError, match=r"expected G's images of shape \(C, H, W\) with C 1 or 3, got \(16,\)"):
        WebSession(inverter, description="flat")
    gan = make_gan("conditional")
    conditional = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                               conditioning=gan.conditioning, steps=5, batch_size=8, cn_hidden=(8,), progress=False,
                               validation_size=8, seed=0)
    with pytest.raises(ValueError, match="expected an unconditional GAN"):
        WebSession(conditional, description="conditional")
    dcgan = make_gan("dcgan")
    fitted = fit_inverter(dcgan.generator, dcgan.discriminator, dcgan.feature_layer, latent_shape=dcgan.latent_shape,
                          steps=5, batch_size=8, cn_hidden=(8,), progress=False, validation_size=8, seed=0)
    with pytest.raises(ValueError, match=r"examples: expected pictures of G's shape \(N, 1, 8, 8\)"):
        WebSession(fitted, description="x", examples=Examples(np.zeros((2, 1, 9, 9), np.uint8)))
    with pytest.raises(ValueError, match="direction 'd': expected shape"):
        WebSession(fitted, description="x", directions={"d": torch.zeros(3)})
    with pytest.raises(ValueError, match="direction 'd': expected finite"):
        WebSession(fitted, description="x", directions={"d": torch.full(dcgan.latent_shape, float("nan"))})


# ----------------------------------------------------------------------------- where directions and examples come from
def test_class_directions_match_attribute_direction(make_gan) -> None:
    gan = make_gan("dcgan")
    inverter = fit_inverter(gan.generator, gan.discriminator, gan.feature_layer, latent_shape=gan.latent_shape,
                            steps=5, batch_size=8, cn_hidden=(8,), progress=False, validation_size=8, seed=0)
    _, x, _ = gan.sample(12)
    labels = np.array([0, 1, 2] * 4)
    directions = class_directions(inverter, x, labels, ["a", "b", "c"])
    assert list(directions) == ["a", "b", "c"]
    for i, name in enumerate("abc"):
        mask = torch.from_numpy(labels == i)
        torch.testing.assert_close(directions[name], attribute_direction(inverter, x[mask], x[~mask]))
    assert list(class_directions(inverter, x, torch.from_numpy(labels))) == ["0", "1", "2"]
    with pytest.raises(ValueError, match="at least two classes"):
        class_directions(inverter, x, np.zeros(12, int))
    with pytest.raises(ValueError, match=r"expected \(12,\) integers"):
        class_directions(inverter, x, np.zeros(11, int))
    with pytest.raises(ValueError, match=r"got none for \[2\]"):
        class_directions(inverter, x, labels, ["a", "b"])
    with pytest.raises(ValueError, match="repeated names"):
        class_directions(inverter, x, labels, {0: "a", 1: "a", 2: "c"})


def test_directions_from_folders_and_files_and_examples_from_any_source(tmp_path, zoo_session) -> None:
    session, images, _, _ = zoo_session
    inverter = session.inverter
    pictures = _unit(images[:6])
    for label, rows in (("shoes", [0, 1, 2]), ("shirts", [3, 4, 5])):
        (tmp_path / "labelled" / label).mkdir(parents=True)
        for i in rows:
            Image.fromarray(pictures[i, 0]).save(tmp_path / "labelled" / label / f"{i}.png")
    directions = directions_from_folders(tmp_path / "labelled", inverter)
    assert directions.names == ("shirts", "shoes") and directions.method == "labels"
    x = torch.from_numpy(pictures / 255.0 * 2 - 1).float()
    expected = learn_directions(inverter, torch.cat([x[3:], x[:3]]), torch.tensor([0, 0, 0, 1, 1, 1]),
                                names=["shirts", "shoes"], seed=0)
    torch.testing.assert_close(directions.directions, expected.directions, atol=1e-5, rtol=0)
    safetensors.torch.save_file({"smile": torch.ones(100), "age": torch.zeros(100, 1, 1)}, str(tmp_path / "d.safetensors"))
    loaded = directions_from_file(tmp_path / "d.safetensors", inverter)
    assert set(loaded) == {"smile", "age"} and loaded["smile"].shape == (100, 1, 1)
    safetensors.torch.save_file({"bad": torch.ones(7)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match=r"direction 'bad' has shape \(7,\); expected the latent shape \(100, 1, 1\)"):
        directions_from_file(tmp_path / "bad.safetensors", inverter)
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable .safetensors file"):
        directions_from_file(tmp_path / "junk.safetensors", inverter)
    with pytest.raises(FileNotFoundError):
        directions_from_file(tmp_path / "none.safetensors", inverter)
    with pytest.raises(ValueError, match="at least two sub-folders"):
        directions_from_folders(tmp_path / "labelled" / "shoes", inverter)
    examples = examples_from(str(tmp_path / "labelled" / "shoes"), inverter)
    assert examples.images.shape == (3, 1, 28, 28) and np.array_equal(examples.images, pictures[:3])
    zoo_pictures = examples_from("zoo:dcgan-fashion-mnist", inverter, limit=5)  # zoo sources as the command line's
    assert np.array_equal(zoo_pictures.images, zoo.load_test_images()[0][:5, None])


def test_the_page_reads_images_through_the_core_not_the_command_line() -> None:
    """web/ imports nothing from cli/ (image reading and pixel conversion live in discinvert.pixels)."""
    import ast

    for path in sorted((ROOT / "discinvert" / "web").glob("*.py")):
        tree = ast.parse(path.read_text())
        modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert not {m for m in modules if m.startswith("discinvert.cli")}, path.name


# ----------------------------------------------------------------------------- the command
def _serve(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "discinvert", "serve", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_discinvert_serve_prints_its_url_and_serves_the_zoo_s_best_inverter() -> None:
    process = _serve("--gan", "zoo:dcgan-fashion-mnist", "--port", "0", "--host", "0.0.0.0")
    try:
        line = process.stdout.readline()
        match = re.match(r"discinvert serve: (http://0\.0\.0\.0:(\d+)/)", line)
        assert match, line + process.stderr.read() if process.poll() is not None else line
        info = httpx.get(f"http://127.0.0.1:{match.group(2)}/api/info", timeout=30).json()
        assert info["description"].endswith("inverter zoo:dcgan-fashion-mnist/real-images")
        assert info["iterations"] == 2 and len(info["directions"]) == 10 and info["examples"] == 1000
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "warning: listening on 0.0.0.0, not only on this machine" in stderr
    assert stderr.startswith("discinvert serve: loading zoo:dcgan-fashion-mnist and its inverter ...\n"
                             "discinvert serve: inverter zoo:dcgan-fashion-mnist/real-images (the GAN's default; ")
    assert "discinvert serve: one edit direction per class of zoo:dcgan-fashion-mnist, as the entry ships them\n" in stderr
    assert "learned from" not in stderr  # the shipped set, not learned at start


def test_discinvert_serve_gives_one_line_errors() -> None:
    process = _serve("--gan", "zoo:dcgan-fashion-mnist", "--directions", "/nonexistent.safetensors", "--port", "0")
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    *progress, error = stderr.strip().splitlines()  # what it was loading, then the error
    assert error == "discinvert serve: error: /nonexistent.safetensors: no such directions file."
    assert progress and all(line.startswith("discinvert serve: ") and ": error" not in line for line in progress)


def test_discinvert_serve_says_what_it_loads_before_it_is_ready(tmp_path) -> None:
    """Issue 32 item 17: seconds of loading are not silent; the lines go to stderr, stdout's first line stays the URL."""
    import select

    from tests import cli_factories

    G, D = cli_factories.make_generator(), cli_factories.make_discriminator()
    fit_inverter(G, D, "4", latent_shape=(cli_factories.LATENT, 1, 1), steps=1, batch_size=16, validation_size=16,
                 seed=0, progress=False).save_pretrained(tmp_path / "inv")
    process = _serve("--generator", "tests.cli_factories:make_generator", "--discriminator",
                     "tests.cli_factories:make_discriminator", "--inverter", str(tmp_path / "inv"), "--port", "0")
    try:
        line = process.stdout.readline()
        assert re.match(r"discinvert serve: http://127\.0\.0\.1:\d+/", line), line
        # written before the URL, so already waiting in the pipe when the URL arrives
        assert select.select([process.stderr], [], [], 0)[0], "nothing on stderr before the URL"
        assert process.stderr.readline() == "discinvert serve: loading the GAN and its inverter ...\n"
        assert process.stderr.readline() == (f"discinvert serve: inverter {tmp_path / 'inv'}: fitted on self-generated "
                                             "pairs (the paper's method); reads D's 4, codes (8, 1, 1)\n")
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_discinvert_serve_takes_any_gan_with_its_inverter_examples_and_labelled_folders(tmp_path) -> None:
    """Factories, an inverter directory, --examples and --labelled: the page works for a GAN that is not ours."""
    from tests import cli_factories

    G, D = cli_factories.make_generator(), cli_factories.make_discriminator()
    fit_inverter(G, D, "4", latent_shape=(cli_factories.LATENT, 1, 1), steps=5, batch_size=16, validation_size=16,
                 seed=0, progress=False).save_pretrained(tmp_path / "inv")
    with torch.no_grad():
        pictures = _unit(G(torch.randn(6, cli_factories.LATENT, 1, 1, generator=torch.Generator().manual_seed(0))))
    for label, rows in (("left", [0, 1, 2]), ("right", [3, 4, 5])):
        (tmp_path / "labelled" / label).mkdir(parents=True)
        for i in rows:
            Image.fromarray(pictures[i, 0]).save(tmp_path / "labelled" / label / f"{i}.png")
    factories = ["--generator", "tests.cli_factories:make_generator",
                 "--discriminator", "tests.cli_factories:make_discriminator"]
    process = _serve(*factories, "--inverter", str(tmp_path / "inv"), "--examples", str(tmp_path / "labelled" / "left"),
                     "--labelled", str(tmp_path / "labelled"), "--port", "0")
    try:
        line = process.stdout.readline()
        match = re.match(r"discinvert serve: (http://127\.0\.0\.1:\d+/)", line)
        assert match, line + (process.stderr.read() if process.poll() is not None else "")
        info = httpx.get(match.group(1) + "api/info", timeout=30).json()
        assert info["directions"] == ["left", "right"] and info["examples"] == 3 and info["image_shape"] == [1, 8, 8]
        assert [g["method"] for g in info["direction_groups"]] == ["labels"]
        answer = httpx.post(match.group(1) + "api/reconstruct", data={"example": "1"}, timeout=30).json()
        assert len(answer["code"]) == cli_factories.LATENT
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "warning" not in stderr  # bound to 127.0.0.1
    without = _serve(*factories, "--port", "0")
    _, stderr = without.communicate(timeout=120)
    assert without.returncode == 2 and "--inverter PATH is needed" in stderr
