"""The image analysis: an image's SVD and its low-rank reconstructions (the notebook's Part 1)."""
