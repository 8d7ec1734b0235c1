"""``lmaho decode`` (placeholder until the codec lands)."""
