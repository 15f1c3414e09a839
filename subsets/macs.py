"""Counting multiply-accumulates (MACs) with torch's FlopCounterMode, attention on the CPU included.

FlopCounterMode knows the fused attention kernels of CUDA (flash, memory-efficient, cuDNN) but not the one torch
runs on the CPU (`_scaled_dot_product_flash_attention_for_cpu`, and its backward): on a CPU, a ViT's attention
products would silently count as nothing. They are counted here by the formulas torch uses for the others.
"""

from __future__ import annotations


def mac_counter():
    """A FlopCounterMode (no display) that also counts the CPU's fused attention; `macs(counter)` reads it."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, flop_registry

    aten = torch.ops.aten
    same_as = {aten._scaled_dot_product_flash_attention_for_cpu: aten._scaled_dot_product_flash_attention,
               aten._scaled_dot_product_flash_attention_for_cpu_backward:
                   aten._scaled_dot_product_flash_attention_backward}
    return FlopCounterMode(display=False, custom_mapping={op: _as_registered(flop_registry[known])
                                                          for op, known in same_as.items()})


def _as_registered(formula):
    """A formula from torch's registry, marked as taking tensors (it reads their shapes itself), so that
    FlopCounterMode does not wrap it a second time."""
    def count(*args, **kwargs):
        return formula(*args, **kwargs)

    count._get_raw = True
    return count


def macs(counter) -> int:
    """What a counter counted, in multiply-accumulates (half its FLOPs)."""
    return counter.get_total_flops() // 2
