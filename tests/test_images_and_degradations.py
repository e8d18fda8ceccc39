"""Bundled photos, crops, image files, padding, PSNR/SSIM, and the task degradations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mrs_numerics.imaging import degradations
from mrs_numerics.imaging.degradations import TASKS, degrade
from mrs_numerics.imaging.files import from_uint8, read_image, to_uint8, write_image
from mrs_numerics.imaging.metrics import psnr, ssim
from mrs_numerics.imaging.padding import pad_to_multiple, unpad
from mrs_numerics.imaging.photos import (
    HELDOUT_PHOTOS,
    PHOTOS,
    TRAIN_PHOTOS,
    center_crop,
    load_photo,
    random_crops,
)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def clean() -> torch.Tensor:
    """The 96×96 centres of two training photos."""
    return torch.stack([center_crop(load_photo(name), 96) for name in ("astronaut", "chelsea")])


# ---------------------------------------------------------------------------------------------
# Photos and crops
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_every_photo_loads_as_an_rgb_float_image_in_unit_range(name):
    photo = load_photo(name)
    assert photo.ndim == 3 and photo.shape[0] == 3 and min(photo.shape[1:]) >= 256
    assert photo.dtype == torch.float32
    assert float(photo.min()) >= 0.0 and float(photo.max()) <= 1.0
    assert float(photo.std()) > 0.05


def test_heldout_photos_are_never_training_photos():
    assert set(HELDOUT_PHOTOS) == {"coffee", "grace_hopper"}
    assert set(TRAIN_PHOTOS).isdisjoint(HELDOUT_PHOTOS)
    assert set(TRAIN_PHOTOS) | set(HELDOUT_PHOTOS) == set(PHOTOS)
    assert {"stereo_motorcycle_left", "stereo_motorcycle_right"} <= set(TRAIN_PHOTOS)


def test_unknown_photo_lists_the_bundled_ones():
    with pytest.raises(ValueError, match=r"unknown photo 'lena'.*astronaut"):
        load_photo("lena")


def test_random_crops_are_determined_by_the_generator():
    photos = [load_photo("rocket"), "chelsea"]
    first = random_crops(photos, 32, 6, _generator(7))
    again = random_crops(photos, 32, 6, _generator(7))
    other = random_crops(photos, 32, 6, _generator(8))
    assert first.shape == (6, 3, 32, 32) and first.dtype == torch.float32
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert random_crops(photos, 32, 2, _generator(7), dtype=torch.float64).dtype == torch.float64


def test_random_crops_are_windows_of_the_photo():
    photo = torch.rand(3, 20, 30, generator=_generator(1))
    crop = random_crops([photo], 8, 1, _generator(2))[0]
    windows = photo.unfold(1, 8, 1).unfold(2, 8, 1)  # [3, 13, 23, 8, 8]
    matches = (windows == crop[:, None, None]).all(-1).all(-1).all(0)
    assert int(matches.sum()) == 1


def test_crop_larger_than_a_photo_is_refused():
    with pytest.raises(ValueError, match="crop size 64 exceeds"):
        random_crops([torch.rand(3, 40, 80)], 64, 1, _generator())


def test_center_crop_takes_the_middle():
    image = torch.arange(3 * 6 * 7, dtype=torch.float32).reshape(3, 6, 7)
    assert torch.equal(center_crop(image, 2), image[:, 2:4, 2:4])
    assert torch.equal(center_crop(image[None], (4, 3))[0], image[:, 1:5, 2:5])
    with pytest.raises(ValueError, match="exceeds the image size"):
        center_crop(image, 8)


# ---------------------------------------------------------------------------------------------
# Files and padding
# ---------------------------------------------------------------------------------------------


def test_png_round_trip_is_exact_to_8_bit_quantisation(tmp_path):
    image = torch.rand(3, 11, 14, generator=_generator(4))
    write_image(tmp_path / "x.png", image)
    back = read_image(tmp_path / "x.png")
    assert back.shape == image.shape and back.dtype == torch.float32
    assert float((back - image).abs().max()) <= 0.5 / 255 + 1e-6


def test_jpeg_files_are_written_and_read(tmp_path):
    image = center_crop(load_photo("astronaut"), 64)
    write_image(tmp_path / "x.JPG", image)
    assert psnr(read_image(tmp_path / "x.JPG"), image) > 30


def test_grey_images_are_read_as_rgb(tmp_path):
    from PIL import Image

    grey = np.arange(60, dtype=np.uint8).reshape(6, 10) * 4
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    image = read_image(tmp_path / "grey.png")
    assert image.shape == (3, 6, 10)
    assert torch.equal(image[0], image[2])
    assert torch.allclose(image[1], torch.from_numpy(grey).float() / 255)


def test_unreadable_images_raise_errors_naming_the_path(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        read_image(tmp_path / "broken.png")
    with pytest.raises(ValueError, match=r"cannot read image .*missing\.png.*no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="unknown image suffix"):
        write_image(tmp_path / "x.gif", torch.rand(3, 4, 4))


@pytest.mark.parametrize(("height", "width", "multiple"), [(13, 17, 4), (8, 9, 8), (3, 5, 4)])
def test_pad_to_multiple_round_trips_odd_sizes(height, width, multiple):
    batch = torch.rand(2, 3, height, width, generator=_generator(5))
    padded, size = pad_to_multiple(batch, multiple)
    assert size == (height, width)
    assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
    assert padded.shape[-2] - height < multiple and padded.shape[-1] - width < multiple
    assert torch.equal(unpad(padded, size), batch)


def test_padding_reflects_the_border():
    batch = torch.rand(1, 3, 5, 6, generator=_generator(6))
    padded, _ = pad_to_multiple(batch, 4)
    assert torch.equal(padded[..., 5, :6], batch[..., 3, :])
    assert torch.equal(padded[..., :5, 6], batch[..., :, 4])


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------


def test_psnr_of_identical_images_is_infinite():
    image = torch.rand(3, 16, 16, generator=_generator())
    assert psnr(image, image) == math.inf


def test_psnr_of_a_constant_error_of_one_tenth_is_20_db():
    image = torch.rand(3, 16, 20, generator=_generator(), dtype=torch.float64)
    assert psnr(image + 0.1, image) == pytest.approx(20.0, abs=1e-9)
    batch = torch.stack([image, image])
    shifted = batch + torch.tensor([0.1, 0.01], dtype=torch.float64)[:, None, None, None]
    torch.testing.assert_close(
        psnr(shifted, batch), torch.tensor([20.0, 40.0], dtype=torch.float64)
    )


def test_metrics_ignore_a_4_pixel_border():
    image = torch.rand(3, 24, 24, generator=_generator(), dtype=torch.float64)
    spoiled = image.clone()
    spoiled[:, :4] = 0.0
    spoiled[:, :, -4:] = 1.0
    assert psnr(spoiled, image) == math.inf
    assert ssim(spoiled, image) == pytest.approx(1.0)
    assert psnr(spoiled, image, border=0) < 20


def test_ssim_of_an_image_with_itself_is_one_and_drops_with_noise(clean):
    image = clean[0]
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    noisy = (image + 0.1 * torch.randn(image.shape, generator=_generator())).clamp(0, 1)
    assert 0.0 < ssim(noisy, image) < 0.9
    assert ssim(clean, clean).shape == (2,)


def test_metrics_refuse_mismatched_or_tiny_images():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(torch.rand(3, 16, 16), torch.rand(3, 16, 17))
    with pytest.raises(ValueError, match="nothing left"):
        psnr(torch.rand(3, 8, 16), torch.rand(3, 8, 16))


# ---------------------------------------------------------------------------------------------
# Degradations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", sorted(TASKS))
def test_each_degradation_is_determined_by_the_generator(task, clean):
    first = degrade(task, clean, _generator(1))
    assert first.shape == clean.shape and first.dtype == clean.dtype
    assert torch.equal(first, degrade(task, clean, _generator(1)))
    assert degrade(task, clean[1], _generator(2)).shape == clean[1].shape


@pytest.mark.parametrize("task", ["denoise", "lowlight", "blur"])
def test_noisy_degradations_differ_between_seeds(task, clean):
    assert not torch.equal(degrade(task, clean, _generator(1)), degrade(task, clean, _generator(2)))


def test_denoise_adds_unclipped_noise_of_sigma_50_over_255(clean):
    noisy = degrade("denoise", clean, _generator(0))
    residual = noisy - clean
    assert float(residual.std()) == pytest.approx(50 / 255, rel=0.05)
    assert abs(float(residual.mean())) < 0.01
    assert float(noisy.min()) < 0.0 or float(noisy.max()) > 1.0


def test_lowlight_darkens_by_the_documented_curve(clean):
    dark = degrade("lowlight", clean, _generator(0))
    assert float(dark.mean()) < 0.25 * float(clean.mean())
    expected = (0.25 * clean) ** 1.5
    assert float((dark - expected).abs().mean()) < 0.03
    assert float(dark.min()) >= 0.0 and float(dark.max()) <= 1.0


@pytest.mark.parametrize(("task", "low", "high"), [("jpeg", 20.0, 40.0), ("blur", 18.0, 35.0)])
def test_jpeg_and_blur_lower_psnr_within_a_sane_range(task, low, high, clean):
    degraded = degrade(task, clean, _generator(0))
    quality = psnr(degraded, clean)
    assert bool(((quality > low) & (quality < high)).all()), quality
    assert float(degraded.min()) >= 0.0 and float(degraded.max()) <= 1.0


def test_blur_without_noise_matches_a_reference_gaussian_filter(clean):
    from scipy.ndimage import gaussian_filter

    blurred = degradations.gaussian_blur(clean.double(), 2.0)
    reference = gaussian_filter(
        clean.double().numpy(), sigma=(0, 0, 2, 2), mode="mirror", truncate=3
    )
    np.testing.assert_allclose(blurred.numpy(), reference, atol=1e-12)


def test_jpeg_is_the_pil_codec_at_quality_10(clean):
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.fromarray(to_uint8(clean[0])).save(buffer, "JPEG", quality=10, subsampling=2)
    with Image.open(buffer) as decoded:
        expected = from_uint8(np.asarray(decoded.convert("RGB")))
    assert torch.equal(degrade("jpeg", clean[0]), expected)


def test_unknown_task_lists_the_allowed_ones(clean):
    with pytest.raises(ValueError, match="unknown task 'dehaze'; allowed: denoise, lowlight"):
        degrade("dehaze", clean)
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        degrade("denoise", torch.rand(1, 16, 16), _generator())
