"""Set a layer's massive activations to their column's mean (or zero) and see the model break (Sun et al. 2024)."""
