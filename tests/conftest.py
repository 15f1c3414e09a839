import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read when huggingface_hub is imported: the CLI run in this process too
if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest -n N: the cores shared among the workers and what they start, or
    # their thread pools slow each other about tenfold (2 workers x 2 threads on 2 cores)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ["OMP_NUM_THREADS"] = str(max(1, cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

import pytest
import torch

from distill.encoders import resolve_encoder
from subsets.embed import EmbedConfig, embed_corpus
from subsets.make_subset import SelectConfig, make_subset
from subsets.sources import open_source

from .helpers import write_image_folder

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


# The modules that take longest, longest first (measured on 2 cores, 2026-12-03: 140, 250, 170, 175, 105 s).
# `--dist loadscope` hands each worker a module at a time in collection order: the learning test's 140 s, collected
# last, ran alone at the end while the other worker idled (563 s against 443 s).
LONGEST_FIRST = ("test_learning.py", "test_sweep.py", "test_distributed_select.py", "test_train.py",
                 "test_objectives.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module's tests in written order


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
