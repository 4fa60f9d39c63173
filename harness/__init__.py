"""Lift harness: measures how synthetic pretraining lifts real-image damage detection.

Reads datasets from disk; never needs OpenGL. Torch is imported only inside the
modules that train (install the ``harness`` extra).
"""
