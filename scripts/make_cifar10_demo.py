"""Build the embedded demo data set `builtin:cifar10-demo` from the CIFAR-10 JPEG tars.

Deterministic: the same input tars give byte-identical shards (sorted file names, a seeded
interleave, fixed tar and gzip timestamps), so the shipped data can be rebuilt and checked.

    python scripts/make_cifar10_demo.py --src ../shared/datasets/cifar10 --out subsets/data/cifar10-demo
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import webdataset as wds

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SPLITS = {"train": 1000, "test": 200}  # images per class
SHARD_SIZE = 2000
SEED = 0


def read_split(tar_path: Path, split: str, per_class: int) -> list[tuple[str, bytes, int]]:
    """The first `per_class` images of each class by file name, as (key, jpeg bytes, label)."""
    wanted: dict[str, list[tarfile.TarInfo]] = {c: [] for c in CLASSES}
    with tarfile.open(tar_path) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
        for m in members:
            parts = m.name.split("/")
            if len(parts) == 3 and parts[0] == split and parts[1] in wanted and parts[2].endswith(".jpg"):
                wanted[parts[1]].append(m)
        samples = []
        for label, cls in enumerate(CLASSES):
            if len(wanted[cls]) < per_class:
                raise SystemExit(f"{tar_path}: only {len(wanted[cls])} images of class {cls}, need {per_class}")
            for m in wanted[cls][:per_class]:
                stem = Path(m.name).stem
                samples.append((f"{split}-{cls}-{stem}", tar.extractfile(m).read(), label))
    # Interleave classes so that every shard, and every prefix, is class-balanced-ish.
    order = np.random.default_rng(SEED).permutation(len(samples))
    return [samples[i] for i in order]


def write_shards(samples: list[tuple[str, bytes, int]], out: Path, split: str) -> list[dict]:
    shards = []
    for start in range(0, len(samples), SHARD_SIZE):
        name = f"{split}-{start // SHARD_SIZE:05d}.tar.gz"
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as gz:
            with wds.TarWriter(gz, user="", group="", mtime=0) as sink:
                for key, jpg, label in samples[start : start + SHARD_SIZE]:
                    sink.write({"__key__": key, "jpg": jpg, "cls": str(label).encode()})
        data = buf.getvalue()
        (out / name).write_bytes(data)
        shards.append({"file": name, "count": len(samples[start : start + SHARD_SIZE]),
                       "sha256": hashlib.sha256(data).hexdigest()})
    return shards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=Path("../shared/datasets/cifar10"))
    parser.add_argument("--out", type=Path, default=Path("subsets/data/cifar10-demo"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    index = {"name": "cifar10-demo", "classes": CLASSES, "splits": {}}
    for split, per_class in SPLITS.items():
        samples = read_split(args.src / f"{split}.tar", split, per_class)
        index["splits"][split] = {"count": len(samples), "per_class": per_class,
                                  "shards": write_shards(samples, args.out, split)}
        print(f"{split}: {len(samples)} images")
    (args.out / "index.json").write_text(json.dumps(index, indent=2) + "\n")


if __name__ == "__main__":
    main()
