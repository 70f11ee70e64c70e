"""Synthetic CTR data with a planted ground truth: the generator and its file writers."""
