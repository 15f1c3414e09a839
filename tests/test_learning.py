"""Training teaches: after a short run on a small subset, the student's features beat its untrained twin's.

A loss that falls is not enough: a student that only learns the mean target lowers the loss too
and its k-NN stays where it started. This runs the demo's recipe, shortened, on 600 real images.
"""

import pytest

from distill.config import TrainConfig
from distill.demo import DemoConfig
from distill.evaluate import EvalConfig, evaluate_run
from distill.train import train
from subsets.embed import EmbedConfig, embed_corpus
from subsets.make_subset import SelectConfig, make_subset
from subsets.sources import open_source
from teachers import load_teacher
from teachers.cache import CacheConfig, cache_targets
from teachers.views import ViewPolicy

from .helpers import write_image_folder

K, STEPS = 600, 800
# k-NN gain over the untrained twin that the test demands. Measured on this project's 2-core CPU (1,000 memory /
# 1,000 test images): the demo's recipe with its layer level, 0.432 against 0.292 untrained (+0.140) after 1,200
# steps; on an AVX-512 CPU (2026-12-02) +0.149 after 1,200, +0.108 after 800 (49 s of training, against 72),
# +0.063 after 600 and +0.039 after 400, so 800 keeps twice the margin. Before the layer level, with mixup, 0.391
# (+0.099) after 1,200 steps and +0.041 after 800 (mixup slows the first steps); without it +0.092 after 800, +0.062
# after 500 and -0.009 after 150, where the student has learnt little more than the mean target (which a falling
# loss does not tell apart).
MARGIN = 0.05


@pytest.fixture(scope="module")
def cache(tmp_path_factory, encoder):
    root = tmp_path_factory.mktemp("learning")
    corpus = open_source(write_image_folder(root / "images", 1200, split="builtin:cifar10-demo"))
    emb = embed_corpus(corpus, encoder, root / "emb", EmbedConfig())
    subset = make_subset(emb, root / "random", SelectConfig(method="random", k_max=K, seed=0))
    teacher = load_teacher("mobilenetv2_imagenet", resolution=128, layers=DemoConfig().teacher_layers)
    return cache_targets(corpus, subset, teacher, root / "targets", config=CacheConfig(views=ViewPolicy(views=2)))


def test_a_short_run_of_the_demo_recipe_beats_the_untrained_student_by_a_clear_margin(tmp_path, cache):
    settings = DemoConfig().train | {"steps": STEPS, "workers": 0}
    run = train(TrainConfig.from_dict(settings | {"targets": [str(cache)], "out": str(tmp_path / "run")}))
    result = evaluate_run(run, EvalConfig(train_samples=1000, test_samples=1000, teachers=False))
    gain = result["student"]["knn_top1"] - result["untrained"]["knn_top1"]
    assert gain > MARGIN, result
