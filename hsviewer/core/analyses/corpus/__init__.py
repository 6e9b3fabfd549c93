"""A sweep over every text of a corpus, aggregated per layer."""
