"""The JSON config tree: decoding, the model, paths on disk."""
