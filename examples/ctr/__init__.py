"""Click-through-rate example: synthetic Criteo-like data with a known ground truth."""
