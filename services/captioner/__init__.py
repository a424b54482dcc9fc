"""Captioner: pose-grounded actions, interactions and captions in HAIC's format."""
