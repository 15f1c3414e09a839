"""Stage 1: embed an image corpus and select nested, maximally diverse subsets of it."""
