"""Rendering: the headless GL environment, the pyrender booth renderer with exact labels, sensor and depth-noise models."""
