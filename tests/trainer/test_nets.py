"""The net's input stage: cache bytes and [0, 1] floats are the same images to the network."""

import pytest
import torch

from trainer.nets import IMAGENET_MEAN, IMAGENET_STD, InputStage


@pytest.mark.parametrize(
    ("channels", "normalised"),
    [(3, True), (1, True), (1, False)],  # RGB pretrained-style, grey replicated to RGB, the cnn's crop alone
)
def test_uint8_from_the_cache_gives_what_its_float_gives(channels: int, normalised: bool) -> None:
    images = torch.randint(0, 256, (4, channels, 37, 41), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    stage = InputStage(32, IMAGENET_MEAN, IMAGENET_STD) if normalised else InputStage(32)
    from_bytes, from_floats = stage(images), stage(images.float() / 255)
    assert from_bytes.dtype == torch.float32
    assert from_bytes.shape == (4, 3 if normalised else channels, 32, 32)
    torch.testing.assert_close(from_bytes, from_floats, rtol=0, atol=1e-5)
    # The crop is centred, as torchvision's CenterCrop takes it: rows 2..33, columns 4..35.
    top_left = images[:, :, 2, 4].float() / 255
    expected = (top_left - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD) if normalised else top_left
    torch.testing.assert_close(from_bytes[:, :, 0, 0], expected.expand_as(from_bytes[:, :, 0, 0]), rtol=0, atol=1e-5)


def test_the_cache_is_not_written() -> None:
    images = torch.full((2, 3, 32, 32), 200, dtype=torch.uint8)
    InputStage(32, IMAGENET_MEAN, IMAGENET_STD)(images)
    assert bool((images == 200).all())
