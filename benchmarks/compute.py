"""What an answer costs at scale, counted rather than timed: `distill compare`'s compute account (selection, teacher
targets, student training) projected for a corpus of N images and subsets of k, from multiply-accumulates counted
by torch's FlopCounterMode on the architectures themselves (timm models built on the meta device: no weights, no
memory, any size).

    python benchmarks/compute.py                      # ImageNet-1k, DINOv2 ViT-L/14 -> ViT-S/14, Proteus's budget
    python benchmarks/compute.py --corpus 14197122 --ks 100000 1000000 --teacher vit_giant_patch14_dinov2

Each row is one way to spend the budget of `--epochs` passes over the corpus (Proteus: 300 epochs of ImageNet-1k,
its teacher run online on every sample): the student's training is the same in every row (a step counted forward
and backward, heads left out), the teacher's share is what differs: online, one pass per sample; cached, one pass
per stored view (`--views` of each image used), as this tool's target cache does. Selection is the encoder's pass
over the whole corpus, charged to the diversity methods (random needs none). What these counts leave out: the data
loading and the cache's reads, and that a cache's few views per image are less augmentation than fresh ones.
"""

from __future__ import annotations

import argparse

import timm
import torch
from rich.console import Console
from rich.table import Table

from distill.model_cost import amount
from subsets.macs import mac_counter, macs


def on_meta(name: str, img_size: int):
    """timm's `name` at img_size built on the meta device (shapes, no weights), and one image for it."""
    with torch.device("meta"):
        return (timm.create_model(name, pretrained=False, num_classes=0, img_size=img_size),
                torch.zeros(1, 3, img_size, img_size))


def forward_macs(name: str, img_size: int) -> int:
    """MACs of one image's forward pass of timm's `name` at img_size."""
    model, x = on_meta(name, img_size)
    counter = mac_counter()
    with torch.no_grad(), counter:
        model.eval()(x)
    return macs(counter)


def training_macs(name: str, img_size: int) -> int:
    """MACs of one image's training step (forward and backward) of timm's `name` at img_size."""
    model, x = on_meta(name, img_size)
    counter = mac_counter()
    with counter:
        model.train()(x).sum().backward()
    return macs(counter)


def target_bytes(name: str, img_size: int) -> int:
    """Bytes of one view's default targets in a cache: the class token and the patch tokens, fp16."""
    model, _ = on_meta(name, img_size)
    patches = (img_size // model.patch_embed.patch_size[0]) ** 2
    return (1 + patches) * model.num_features * 2


def accounts(a: argparse.Namespace) -> tuple[list[tuple[str, int, int, int, int]], dict]:
    """(row name, selection, teacher, training MACs, cached target bytes) for each way to spend the budget, and the
    per-image counts."""
    per = {"teacher": forward_macs(a.teacher, a.img_size), "encoder": forward_macs(a.encoder, a.img_size),
           "student": training_macs(a.student, a.img_size), "view_bytes": target_bytes(a.teacher, a.img_size)}
    samples = a.epochs * a.corpus
    training = samples * per["student"]
    selection = a.corpus * per["encoder"]
    cached = lambda n: n * a.views * per["teacher"]  # noqa: E731
    stored = lambda n: n * a.views * per["view_bytes"]  # noqa: E731
    rows = [("full corpus, teacher online (Proteus)", 0, samples * per["teacher"], training, 0),
            (f"full corpus, {a.views} cached views", 0, cached(a.corpus), training, stored(a.corpus))]
    for k in a.ks:
        rows.append((f"random k = {k:,}, {a.views} cached views", 0, cached(k), training, stored(k)))
        rows.append((f"kcenter / k-means k = {k:,}, {a.views} cached views", selection, cached(k), training, stored(k)))
    return rows, per


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", type=int, default=1_281_167, help="images in the corpus (ImageNet-1k's training set)")
    p.add_argument("--ks", type=int, nargs="+", default=[12_800, 128_000], help="subset sizes (1%% and 10%%)")
    p.add_argument("--epochs", type=float, default=300, help="passes over the corpus the student's budget is (Proteus)")
    p.add_argument("--views", type=int, default=2, help="views a cache stores of each image")
    p.add_argument("--teacher", default="vit_large_patch14_dinov2", help="timm architecture of the teacher")
    p.add_argument("--student", default="vit_small_patch14_dinov2", help="timm architecture of the student")
    p.add_argument("--encoder", default="vit_small_patch14_dinov2", help="timm architecture embedding for selection")
    p.add_argument("--img-size", type=int, default=224)
    a = p.parse_args(argv)
    rows, per = accounts(a)
    console = Console()
    console.print(f"per image at {a.img_size} px: teacher {a.teacher} {amount(per['teacher'])} MACs forward; "
                  f"student {a.student} {amount(per['student'])} MACs forward and backward; encoder {a.encoder} "
                  f"{amount(per['encoder'])} MACs forward")
    table = Table(title=f"compute of one answer: {a.corpus:,} images, a student budget of {a.epochs:g} epochs "
                        f"({a.epochs * a.corpus:,.0f} samples; multiply-accumulates)")
    for col in ("how", "selection", "teacher targets", "student training", "total", "teacher share", "targets stored"):
        table.add_column(col, justify="left" if col == "how" else "right")
    for name, selection, teacher, training, stored in rows:
        total = selection + teacher + training
        table.add_row(name, amount(selection) if selection else "0", amount(teacher), amount(training), amount(total),
                      f"{teacher / total:.0%}", f"{amount(stored)}B" if stored else "-")
    console.print(table)
    console.print(f"targets stored: {amount(per['view_bytes'])}B a view (the teacher's class token and patch tokens "
                  "in fp16, the cache's default targets)")


if __name__ == "__main__":
    main()
