"""Features: pure functions from audio arrays to per-clip vectors."""
