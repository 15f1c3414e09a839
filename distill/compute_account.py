"""The compute an answer took: the multiply-accumulates (MACs) spent to select a run's subset, to cache its teacher's
targets on it and to train its student, so that a comparison sets what a subset saves beside what choosing it cost.

- selection: the encoder's pass over every corpus image (the embeddings' `encoder_cost` x their count), charged to
  each subset whose selection read the embeddings; random and class-balanced orderings and the full corpus read none
  (unless near-duplicates were removed first), and an ordering imported from elsewhere has no known cost. One
  embedding pass serves every method and k of a corpus: each is charged all of it, as each would be run alone;
- teacher: the cached teacher's pass over the views of the run's k images (its cost at the cache's resolution); an
  online teacher runs inside the training steps and is counted there. The statistics pass that normalises the
  targets (1,000 corpus images by default, the same for every run of a corpus) is not counted;
- training: run.json's `macs_per_step` (a step counted while training: forward and backward passes over all
  processes) x its steps.

A part that cannot be known (a run, embeddings or subset made before costs were counted, a teacher not loadable
where the run was evaluated) is None, and so is the total.
"""

from __future__ import annotations

from pathlib import Path

from subsets.errors import InputError
from subsets.fileio import read_json

from .model_cost import amount

# orderings made without reading the embeddings (select.METHODS; imported here, it would load numpy and faiss)
EMBEDDING_FREE = ("random", "class-balanced")
PARTS = ("selection", "teacher", "training")
ACCOUNT = (*PARTS, "total")  # what eval.json's cost.compute holds


def selection_macs(record: dict) -> int | None:
    """MACs of the embedding pass a run's subset was selected from: 0 where its ordering read no embeddings, None
    where not known."""
    subset = record["subset"]
    try:
        manifest = read_json(Path(subset["path"]) / "manifest.json", "subset manifest")
        if not manifest.get("dedup"):  # near-duplicate removal reads the embeddings whatever the ordering
            if subset.get("full") or manifest["method"] in EMBEDDING_FREE:
                return 0
            if "imported" in manifest["params"]:
                return None  # made elsewhere, at a cost we do not know
        meta = read_json(Path(manifest["embeddings"]["path"]) / "meta.json", "embeddings metadata")
    except (InputError, KeyError, TypeError):
        return None
    cost = meta.get("encoder_cost")
    return cost["macs"] * meta["count"] if cost else None


def teacher_macs(record: dict, view_costs: list[dict | None]) -> int | None:
    """MACs of the cached teachers' passes over the views a run learnt from (0 for online or self-supervised runs:
    an online teacher is in the training steps); `view_costs`: each of run.json's teachers' cost per view, in its
    order (two caches of one teacher at two resolutions cost each their own)."""
    if record.get("mode") != "cached" or not record["teachers"]:
        return 0
    cached = round(record["samples_seen"] / record["epochs"])  # the cached views it drew from: k images x views each
    return None if None in view_costs else sum(c["macs"] for c in view_costs) * cached


def run_compute(record: dict, view_costs: list[dict | None]) -> dict[str, int | None]:
    """{"selection", "teacher", "training", "total"}: a run's MACs, as the module's docstring counts them;
    `view_costs` as `teacher_macs` takes them."""
    per_step = record.get("macs_per_step")
    out = {"selection": selection_macs(record), "teacher": teacher_macs(record, view_costs),
           "training": per_step * record["steps"] if per_step else None}
    out["total"] = None if None in out.values() else sum(out.values())
    return out


def compute_rows(rows: list[dict]) -> list[dict]:
    """One row per recipe, objective, method and k (in the rows' order) with each part's MACs (`{part}_macs` of a
    comparison's rows) averaged over its seeds, None where a seed's is not known; [] where no run has an account."""
    if all(r["training_macs"] is None for r in rows):  # a known total has a known training part
        return []
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["recipe"], r["objective"], r["method"], r["k"]), []).append(r)
    out = []
    for (recipe, objective, method, k), runs in groups.items():
        row = {"recipe": recipe, "objective": objective, "method": method, "k": k, "seeds": len(runs),
               "knn_top1": sum(r["knn_top1"] for r in runs) / len(runs)}
        for part in ACCOUNT:
            values = [r[f"{part}_macs"] for r in runs]
            row[part] = None if None in values else sum(values) / len(values)
        out.append(row)
    return out


def macs_text(value: float | None) -> str:
    """A part of an account as a person reads it: '733 M', '0', or '-' where not known."""
    return "-" if value is None else amount(value) if value else "0"


def compute_words(account: dict | None, lead: str = "compute this run took") -> str | None:
    """'compute this run took: 733 M MACs to select its subset, 978 M for its teacher targets, 3.97 G to train:
    5.68 G in all'; None where the evaluation has no account."""
    if not account:
        return None
    parts = zip(PARTS, (" MACs to select its subset", " for its teacher targets", " to train"))
    total = f": {amount(account['total'])} in all" if account["total"] is not None else " (the total not known)"
    return f"{lead}: " + ", ".join(macs_text(account[p]) + what for p, what in parts) + total
