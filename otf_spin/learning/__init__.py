"""On-the-fly learning: the loop, thresholds, the training-set store, data-set generation."""
