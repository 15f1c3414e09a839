"""How runs are evaluated: one typed dataclass, apart from the evaluation itself so a sweep's settings are checked
without loading torch."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, replace

from subsets.errors import InputError

DEMO_TEST = {"builtin:cifar10-demo": "builtin:cifar10-demo-test"}  # corpora whose test split is known


@functools.lru_cache(maxsize=8)
def class_map(test_spec: str, train_spec: str) -> list[int] | None:
    """The train source's number of each test class, where both sources name their classes and differently (None
    where the numbers already agree, or a source has no names). Sources number their classes each its own way (class
    subfolders sorted): a test folder without one of the train's classes would otherwise shift every label after it.
    A test class the train source lacks is refused: no prediction could name it."""
    from subsets.sources import open_source

    names, train_names = open_source(test_spec).classes, open_source(train_spec).classes
    if names is None or train_names is None or names == train_names:
        return None
    missing = [name for name in names if name not in train_names]
    if missing:
        raise InputError(f"{test_spec}: class {missing[0]!r} is not among the classes of {train_spec} (the k-NN memory "
                         "and the probe's training set), so no prediction could name it")
    return [train_names.index(name) for name in names]


@dataclass(frozen=True)
class EvalConfig:
    train_source: str = "builtin:cifar10-demo"  # labelled images: the k-NN memory and the probe's training set
    test_source: str = "builtin:cifar10-demo-test"  # labelled held-out images: accuracy and agreement
    train_samples: int | None = 2000  # a seeded sample of the train source (None: all of it)
    test_samples: int | None = None  # likewise for the test source
    seed: int = 0
    knn_k: int = 20
    temperature: float = 0.07  # of the k-NN vote weights exp(cos / T), as in DINO
    probe_weight_decay: float = 1e-3
    probe_iters: int = 100  # L-BFGS iterations of the logistic-regression probe
    batch_size: int = 256
    teachers: bool = True  # also evaluate each teacher: the reference row

    def check(self, origin: str = "evaluation") -> EvalConfig:
        """Settings a run's evaluation would fail on, and sources that do not open, refused before any work: a sweep
        would otherwise select, cache and train its first run before its evaluation found a mistyped path."""
        from .typed_settings import checked_settings

        self = replace(self, **checked_settings(EvalConfig, asdict(self), origin))  # a notebook's Path becomes its str
        for name in ("train_samples", "test_samples", "knn_k", "probe_iters", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                allowed = "a positive integer, or null for all of the source" if name.endswith("samples") else \
                    "a positive integer"
                raise InputError(f"{origin}: {name} = {value} must be {allowed}")
        if self.temperature <= 0:
            raise InputError(f"{origin}: temperature = {self.temperature} must be above 0")
        class_map(self.test_source, self.train_source)  # opens both sources, and matches their classes by name
        return self

    def eval_set(self) -> dict:
        """What must be equal for two evaluations to be comparable."""
        keep = ("train_source", "test_source", "train_samples", "test_samples", "seed", "knn_k", "temperature",
                "probe_weight_decay", "probe_iters")
        from .evaluate import _data  # here: reading the sets' images needs torch, naming the settings does not

        corpora = {"train_corpus": _data(self, "train").corpus_hash, "test_corpus": _data(self, "test").corpus_hash}
        if corpora["train_corpus"] == corpora["test_corpus"]:  # each test image would find itself in the memory
            raise InputError(f"{self.test_source}: the test images are those of --train-source {self.train_source}, "
                             "the k-NN memory and the probe's training set; evaluate on held-out images")
        return {k: v for k, v in asdict(self).items() if k in keep} | corpora
