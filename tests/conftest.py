import pytest

from distill.encoders import resolve_encoder

from .helpers import write_image_folder


@pytest.fixture(scope="session")
def encoder():
    """The real offline default encoder at 32 px: real weights, fast enough for tests."""
    return resolve_encoder("mobilenetv2_imagenet", resolution=32)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """120 real CIFAR-10 test images in class subfolders."""
    return write_image_folder(tmp_path_factory.mktemp("corpus") / "images", 120)
