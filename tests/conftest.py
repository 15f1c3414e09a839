import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read when huggingface_hub is imported: the CLI run in this process too

import pytest

from distill.encoders import resolve_encoder
from subsets.embed import EmbedConfig, embed_corpus
from subsets.make_subset import SelectConfig, make_subset
from subsets.sources import open_source

from .helpers import write_image_folder


@pytest.fixture(scope="session")
def encoder():
    """The real offline default encoder at 32 px: real weights, fast enough for tests."""
    return resolve_encoder("mobilenetv2_imagenet", resolution=32)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """120 real CIFAR-10 test images in class subfolders."""
    return write_image_folder(tmp_path_factory.mktemp("corpus") / "images", 120)


@pytest.fixture(scope="session")
def subsets_dir(tmp_path_factory, image_folder, encoder):
    """Two subsets (random, kcenter, k_max 40) of the 120-image test corpus."""
    root = tmp_path_factory.mktemp("subsets")
    emb = embed_corpus(open_source(image_folder), encoder, root / "emb", EmbedConfig())
    for method in ("random", "kcenter"):
        make_subset(emb, root / method, SelectConfig(method=method, k_max=40, seed=1))
    return root
