"""Stage 3: ViT students with a fused attention backend (see DESIGN.md, "Students and attention")."""
