"""What a model costs to run: its parameters and the multiply-accumulates (MACs) of one image's forward pass.

A distilled student is worth its accuracy only beside what it saves: the same figures for the teacher say by how
much. MACs are counted by torch's FlopCounterMode (matrix products, convolutions, attention: `subsets.macs`), one
image at the model's own input side; a FLOP count as papers give it is about twice the MACs.
"""

from __future__ import annotations

from .teacher_labels import comparison_labels


def model_cost(model, img_size: int) -> dict[str, int]:
    """{"params": parameters, "macs": multiply-accumulates of a forward pass of one img_size x img_size image}."""
    import torch  # here, not above: `distill compare` reads costs without loading torch

    from subsets.macs import mac_counter, macs

    params = sum(p.numel() for p in model.parameters())
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    counter = mac_counter()
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, img_size, img_size, device=device))
    model.train(was_training)
    return {"params": params, "macs": macs(counter), "img_size": img_size}


def amount(n: float) -> str:
    """1,234,567 -> '1.2 M': the size of a count, to two significant figures or so."""
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.2f} {unit}" if value < 10 else f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{n:.0f}"


def times(ratio: float) -> str:
    """24.4 -> '24x', 0.833 -> '0.83x'."""
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2g}x"


def cost_cells(cost: dict | None) -> tuple[str, str]:
    """A cost as two table cells (parameters; MACs at the input side), or two dashes where there is none."""
    return (amount(cost["params"]), f"{amount(cost['macs'])} at {cost['img_size']} px") if cost else ("-", "-")


def cost_words(cost: dict) -> str:
    return f"{amount(cost['params'])} parameters, {amount(cost['macs'])} MACs per image at {cost['img_size']} px"


def cost_note(evaluations: list[dict], records: list[dict] | None = None) -> str | None:
    """One line for a comparison: what its students and teachers cost per image (from their eval.json, the runs'
    run.json in `records` naming the teachers as `comparison_labels` does), with the teacher's compute as a multiple
    of the student's; None where the evaluations predate costs."""
    students = {tuple(sorted(e["cost"]["student"].items())) for e in evaluations if e.get("cost")}
    # labelled over every evaluation, as the ceiling rows are: one without costs still tells two resolutions apart
    teachers = {labels[key]: c for e, labels in zip(evaluations, comparison_labels(evaluations, records)) if e.get("cost")
                for key, c in e["cost"]["teachers"].items() if c}
    if not students:
        return None
    parts = [("student " if len(students) == 1 else "students ") + "; ".join(cost_words(dict(s)) for s in sorted(students))]
    smallest = min(dict(s)["macs"] for s in students)
    for name, c in sorted(teachers.items()):
        ratio = f" ({times(c['macs'] / smallest)} the student's compute)" if len(students) == 1 and smallest else ""
        parts.append(f"teacher {name}: {cost_words(c)}{ratio}")
    return "Cost: " + "; ".join(parts) + "."
