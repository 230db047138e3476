"""Files: output naming across backends (uploads follow later)."""
