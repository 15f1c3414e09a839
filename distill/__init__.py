"""subset-distill: distil vision foundation models into small students on diversity-selected subsets."""

__version__ = "0.1.0"
