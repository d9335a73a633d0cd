import io

import numpy as np
import pytest
from PIL import Image

from vitrine.preprocess import (
    ImageDecodeError,
    ImageLimits,
    TextTokenizer,
    decode_image,
    normalize_title,
)


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_real_catalog_jpeg_decodes_to_uint8_hwc(demo_catalog):
    data = demo_catalog.products[0].image_path.read_bytes()
    arr = decode_image(data)
    assert arr.shape == (224, 224, 3) and arr.dtype == np.uint8
    # Already 224x224: decode is lossless w.r.t. PIL's own decode.
    ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(arr, ref)


def test_resize_shorter_side_and_centre_crop():
    # 400x200 image: left half red, right half blue, with a green centre stripe.
    a = np.zeros((200, 400, 3), dtype=np.uint8)
    a[:, :200] = (255, 0, 0)
    a[:, 200:] = (0, 0, 255)
    a[:, 190:210] = (0, 255, 0)
    out = decode_image(_encode(Image.fromarray(a), "PNG"), size=100)
    assert out.shape == (100, 100, 3)
    # Shorter side 200 -> 100, width 400 -> 200, crop columns 50..150: the stripe sits in the middle.
    assert tuple(out[50, 50]) == (0, 255, 0)
    assert out[50, 5, 0] > 200 and out[50, 95, 2] > 200  # red left edge, blue right edge


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "JPEG"])
def test_allowed_formats_and_rgba_grayscale(fmt):
    mode = "RGBA" if fmt in ("PNG", "WEBP") else "L"
    img = Image.new(mode, (300, 250), 128)
    assert decode_image(_encode(img, fmt)).shape == (224, 224, 3)


def test_corrupt_and_empty_and_unsupported():
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_image(b"")
    with pytest.raises(ImageDecodeError, match="cannot decode"):
        decode_image(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(ImageDecodeError, match="unsupported image format"):
        decode_image(_encode(Image.new("RGB", (10, 10)), "GIF"))


def test_size_limits_bytes_and_pixels():
    data = _encode(Image.new("RGB", (500, 500)), "PNG")
    with pytest.raises(ImageDecodeError, match="bytes"):
        decode_image(data, limits=ImageLimits(max_bytes=len(data) - 1))
    # Pixel guard reads only the header: a 500x500 image against a 200k-pixel limit.
    with pytest.raises(ImageDecodeError, match="pixels"):
        decode_image(data, limits=ImageLimits(max_pixels=200_000))


def test_normalize_title():
    assert normalize_title("  Nike Men's  T-Shirt!! ") == normalize_title("nike men s t shirt")


def test_tokenizer_dynamic_padding_and_truncation():
    from exporter.backbones import minilm_tokenizer_json

    tok = TextTokenizer(minilm_tokenizer_json(), max_length=8)
    b = tok.encode(["red dress", "a very long product title with many many words in it"])
    assert b.input_ids.shape == (2, 8) and b.input_ids.dtype == np.int64
    assert b.attention_mask[0].sum() == b.token_counts[0] < 8
    assert b.truncated == [False, True]
    assert b.token_counts[1] == 8
    # The last kept token of a truncated text is still [SEP].
    assert b.input_ids[1, -1] == tok._tok.token_to_id("[SEP]")
