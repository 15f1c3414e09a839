"""Recipe ablation: how well a student learns on a small subset, one change at a time, at the demo's budget.

    python benchmarks/recipe.py --demo-out demo-out               # every variant below, on the demo's caches
    python benchmarks/recipe.py --demo-out demo-out --k 100 --only "+ layer level (the demo)"
    python benchmarks/recipe.py --demo-out demo-out --k 100 --cache targets-k100-v16 --only ...  # more views

Each variant is a set of TrainConfig settings over a base (the demo's recipe before this ablation);
it is trained on the demo's cache of one selection method at one k and evaluated as `distill eval`
does (k-NN and linear probe on the demo test set, the untrained twin as the floor). Results are
kept in OUT/results.json, so a rerun only adds what is missing, and printed as a table with each
accuracy's 95% interval (binomial, over the test images).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from distill.config import TrainConfig  # noqa: E402
from distill.demo import DemoConfig  # noqa: E402
from distill.evaluate import EvalConfig, evaluate_run  # noqa: E402
from distill.run_dir import is_complete, latest_checkpoint  # noqa: E402
from distill.train import train  # noqa: E402

# The demo's recipe before issue 10: a 4-block ViT-Ti, patch 8, token + feature levels, cosine on normalised targets
# (now normalised by the corpus's statistics).
BASE = {"student": "vit_tiny_patch16_224", "img_size": 32, "patch_size": 8, "student_kwargs": {"depth": 4},
        "steps": 200, "batch_size": 64, "lr": 3e-3, "warmup": 0.1, "w_patch": 0.0, "distance": "cosine",
        "normalize_targets": True, "checkpoint_every": 1000, "log_every": 50}
DEMO_TRAIN = DemoConfig().train
# The demo's recipe at 1,500 steps: the reference of the single changes below (measured before the demo went to 1,800).
FINAL = {k: DEMO_TRAIN[k] for k in ("stem", "student_kwargs", "lr", "batch_size")} | {"steps": 1500}
# From the old recipe to the demo's, one change at a time, then single changes to the demo's recipe.
VARIANTS = {
    "old demo recipe": {},
    "+ lr 1e-3": {"lr": 1e-3},
    "+ SCOTT stem": {"lr": 1e-3, "stem": "scott"},
    "+ depth 2": {"lr": 1e-3, "stem": "scott", "student_kwargs": {"depth": 2}},
    "+ batch 16 x 800 steps": {"lr": 1e-3, "stem": "scott", "student_kwargs": {"depth": 2}, "batch_size": 16,
                               "steps": 800},
    "+ 1,200 steps": FINAL | {"steps": 1200},
    "+ 1,500 steps": FINAL,
    "+ 1,800 steps": FINAL | {"steps": DEMO_TRAIN["steps"]},
    "+ mixup": FINAL | {"steps": DEMO_TRAIN["steps"], "mixup_alpha": DEMO_TRAIN["mixup_alpha"]},
    # the demo's steps at the k trained (DemoConfig.steps_by_k): 1,200 / 2,400 / 3,600 at k = 100 / 300 / 1,000
    "+ steps by k": FINAL | {"steps": "by k", "mixup_alpha": DEMO_TRAIN["mixup_alpha"]},
    # the stem's tokens against the teacher's intermediate map (the demo's caches hold layer17_patch)
    "+ layer level (the demo)": FINAL | {"steps": "by k", "mixup_alpha": DEMO_TRAIN["mixup_alpha"],
                                         "w_layer": DEMO_TRAIN["w_layer"]},
    "demo, patch stem": FINAL | {"stem": "patch"},
    "demo, depth 4": FINAL | {"student_kwargs": {"depth": 4}},
    "demo, token level only": FINAL | {"w_feature": 0.0},
    "demo, mse": FINAL | {"distance": "mse"},
    "demo, EMA 0.99": FINAL | {"ema": 0.99},
    "demo, lr 5e-4": FINAL | {"lr": 5e-4},
    "demo budget, resnet18 (CNN)": FINAL | {"student": "resnet18", "student_kwargs": {}, "stem": "patch"},
    "demo, weight decay 0.3": FINAL | {"weight_decay": 0.3},
    "demo, drop path 0.2": FINAL | {"student_kwargs": {"depth": 2, "drop_path_rate": 0.2}},
    "demo, mse, lr 5e-4": FINAL | {"distance": "mse", "lr": 5e-4},
    "demo, bf16": FINAL | {"precision": "bf16"},
    "demo, 2,000 steps": FINAL | {"steps": 2000},
    "demo, bf16, 2,000 steps": FINAL | {"precision": "bf16", "steps": 2000},
    "demo, bf16, mse, lr 5e-4, 2,000 steps": FINAL | {"precision": "bf16", "steps": 2000, "distance": "mse", "lr": 5e-4},
}


DEMO = "+ layer level (the demo)"
SINGLE_CHANGES_FROM = "+ 1,500 steps"


def at_k(settings: dict, k: int) -> dict:
    """A variant's settings at subset size k: steps "by k" are the demo's at that k."""
    if settings.get("steps") != "by k":
        return settings
    return settings | {"steps": DemoConfig().steps_by_k.get(k, DEMO_TRAIN["steps"])}


def reference(name: str) -> str | None:
    """What a variant is compared with: the previous step on the path to the demo's recipe, or the demo's recipe."""
    names = list(VARIANTS)
    if name == names[0]:
        return None
    return names[names.index(name) - 1] if names.index(name) <= names.index(DEMO) else SINGLE_CHANGES_FROM


def interval(p: float, n: int) -> float:
    """Half-width of the 95% normal interval of an accuracy p on n test images."""
    return 1.96 * math.sqrt(p * (1 - p) / n)


def difference(a: float, b: float, n: int) -> str:
    """a - b with the half-width of its 95% interval, treating the two accuracies as independent (conservative:
    both were measured on the same test images)."""
    return f"{a - b:+.3f} ± {1.96 * math.sqrt((a * (1 - a) + b * (1 - b)) / n):.3f}"


def run_variant(name: str, settings: dict, cache: Path, k: int, out: Path, eval_config: EvalConfig) -> dict:
    run = out / "runs" / name.replace(" ", "_").replace(",", "").replace("+", "plus")
    config = TrainConfig.from_dict({**BASE, **settings, "targets": [str(cache)], "k": k, "out": str(run), "workers": 0})
    if not is_complete(run) and latest_checkpoint(run) is None:
        shutil.rmtree(run, ignore_errors=True)  # cut off before its first checkpoint: start again
    train(config, resume=latest_checkpoint(run) is not None and not is_complete(run) or None)
    result = evaluate_run(run, eval_config)
    return {"settings": settings, "knn_top1": result["student"]["knn_top1"], "probe_top1": result["student"]["probe_top1"],
            "untrained_knn_top1": result["untrained"]["knn_top1"], "untrained_probe_top1": result["untrained"]["probe_top1"],
            "seconds": json.loads((run / "run.json").read_text())["seconds_this_invocation"]}


def explore(record: Path, runs: dict[str, tuple[str, int, dict]], before=None, cache=None) -> None:
    """An exploration's runs, each `name: (method, k, settings over FINAL)` on the demo's cache of that method (a
    finished `distill demo` in demo-out/), recorded in `record` as they finish so a rerun only adds what is missing.
    `before(name)`, where given, sets up what a run changes outside its settings (a patched loss, say); `cache(method)`
    gives another cache of the method's subset (made when first asked)."""
    import time

    root = Path(__file__).resolve().parents[1]
    cache = cache or (lambda method: root / "demo-out" / "targets" / f"{method}-s0")
    for name, (method, k, settings) in runs.items():
        done = json.loads(record.read_text()) if record.exists() else {}
        if name in done:
            continue
        if before is not None:
            before(name)
        start = time.time()
        result = run_variant(name, FINAL | settings, cache(method), k, Path("/tmp") / record.stem,
                             EvalConfig(teachers=False))
        out = {x: result[x] for x in ("knn_top1", "probe_top1", "untrained_knn_top1")}
        out |= {"wall": round(time.time() - start, 1), "train_s": result["seconds"]}
        print(name, out, flush=True)
        record.write_text(json.dumps(done | {name: out}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-out", type=Path, default=Path("demo-out"), help="a finished `distill demo --out` folder")
    parser.add_argument("--method", default="random")
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--only", default="", help="variant names separated by ';' (default: all)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="another target cache of the method's subset (e.g. with more views; default: the demo's)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/recipe"))
    args = parser.parse_args()
    names = [n for n in args.only.split(";") if n] or list(VARIANTS)
    cache = args.cache or args.demo_out / "targets" / f"{args.method}-s0"
    views = json.loads((cache / "index.json").read_text())["views"]
    results_file = args.out / f"results-{args.method}-k{args.k}-v{views}.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    eval_config = EvalConfig(teachers=False)
    for name in names:
        settings = at_k(VARIANTS[name], args.k)
        if name in results and results[name]["settings"] == settings:
            continue
        results[name] = run_variant(name, settings, cache, args.k, args.out / f"{args.method}-k{args.k}-v{views}",
                                    eval_config)
        results_file.parent.mkdir(parents=True, exist_ok=True)
        results_file.write_text(json.dumps(results, indent=1))
    n = 2000  # the demo test set
    table = Table(title=f"recipe ablation: {args.method} k = {args.k}, {views} views, base {BASE['steps']} steps x "
                        f"{BASE['batch_size']} (95% interval over the test images)")
    for col in ("variant", "k-NN top-1", "untrained k-NN", "k-NN change (vs)", "probe top-1", "untrained probe",
                "train s"):
        table.add_column(col)
    lines = ["| " + " | ".join(c.header for c in table.columns) + " |", "|---" * len(table.columns) + "|"]
    for name in [v for v in VARIANTS if v in results]:
        r, ref = results[name], reference(name)
        change = "" if ref not in results else f"{difference(r['knn_top1'], results[ref]['knn_top1'], n)} ({ref})"
        cells = [name, f"{r['knn_top1']:.3f} ± {interval(r['knn_top1'], n):.3f}", f"{r['untrained_knn_top1']:.3f}",
                 change, f"{r['probe_top1']:.3f} ± {interval(r['probe_top1'], n):.3f}", f"{r['untrained_probe_top1']:.3f}",
                 f"{r['seconds']:.0f}"]
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    Console(width=200).print(table)
    results_file.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
