"""The pure core: what is this sound? Decoding, features, the model and the decision; no I/O beyond reading a file."""
