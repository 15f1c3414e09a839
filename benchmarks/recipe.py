"""Recipe ablation: how well a student learns on a small subset, one change at a time, at the demo's budget.

    python benchmarks/recipe.py --demo-out demo-out               # every variant below, on the demo's caches
    python benchmarks/recipe.py --demo-out demo-out --only scott,scott-lr1e-3

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
import sys
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from distill.config import TrainConfig  # noqa: E402
from distill.evaluate import EvalConfig, evaluate_run  # noqa: E402
from distill.train import train  # noqa: E402

# The demo's recipe before issue 10: a 4-block ViT-Ti, patch 8, token + feature levels, cosine on normalised targets.
BASE = {"student": "vit_tiny_patch16_224", "img_size": 32, "patch_size": 8, "student_kwargs": {"depth": 4},
        "steps": 200, "batch_size": 64, "lr": 3e-3, "warmup": 0.1, "w_patch": 0.0, "distance": "cosine",
        "normalize_targets": True, "checkpoint_every": 1000, "log_every": 50}
VARIANTS = {
    "base": {},
    "base-lr1e-3": {"lr": 1e-3},
    "scott": {"stem": "scott"},
    "scott-lr1e-3": {"stem": "scott", "lr": 1e-3},
    "scott-token": {"stem": "scott", "w_feature": 0.0},
    "scott-lr1e-3-token": {"stem": "scott", "lr": 1e-3, "w_feature": 0.0},
    "scott-mse": {"stem": "scott", "distance": "mse"},
    "scott-depth6": {"stem": "scott", "student_kwargs": {"depth": 6}},
    "scott-wd0": {"stem": "scott", "weight_decay": 0.0},
    "resnet18": {"student": "resnet18", "lr": 1e-3},
}


def interval(p: float, n: int) -> float:
    """Half-width of the 95% normal interval of an accuracy p on n test images."""
    return 1.96 * math.sqrt(p * (1 - p) / n)


def run_variant(name: str, settings: dict, cache: Path, k: int, out: Path, eval_config: EvalConfig) -> dict:
    run = out / "runs" / name
    config = TrainConfig.from_dict({**BASE, **settings, "targets": [str(cache)], "k": k, "out": str(run)})
    train(config)
    result = evaluate_run(run, eval_config)
    return {"settings": settings, "knn_top1": result["student"]["knn_top1"], "probe_top1": result["student"]["probe_top1"],
            "untrained_knn_top1": result["untrained"]["knn_top1"], "untrained_probe_top1": result["untrained"]["probe_top1"],
            "seconds": json.loads((run / "run.json").read_text())["seconds_this_invocation"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-out", type=Path, default=Path("demo-out"), help="a finished `distill demo --out` folder")
    parser.add_argument("--method", default="random")
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/recipe"))
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(VARIANTS)
    results_file = args.out / f"results-{args.method}-k{args.k}.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    eval_config = EvalConfig(teachers=False)
    for name in names:
        if name in results and results[name]["settings"] == VARIANTS[name]:
            continue
        results[name] = run_variant(name, VARIANTS[name], args.demo_out / "targets" / args.method, args.k, args.out,
                                    eval_config)
        results_file.parent.mkdir(parents=True, exist_ok=True)
        results_file.write_text(json.dumps(results, indent=1))
    n = 2000  # the demo test set
    table = Table(title=f"recipe ablation: {args.method} k = {args.k}, {BASE['steps']} steps x {BASE['batch_size']} "
                        "(95% interval over the test images)")
    for col in ("variant", "changes", "k-NN top-1", "untrained k-NN", "probe top-1", "untrained probe", "train s"):
        table.add_column(col)
    for name, r in results.items():
        table.add_row(name, json.dumps(r["settings"]), f"{r['knn_top1']:.3f} ± {interval(r['knn_top1'], n):.3f}",
                      f"{r['untrained_knn_top1']:.3f}", f"{r['probe_top1']:.3f} ± {interval(r['probe_top1'], n):.3f}",
                      f"{r['untrained_probe_top1']:.3f}", f"{r['seconds']:.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
