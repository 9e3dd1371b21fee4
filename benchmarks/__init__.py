"""The benchmark: every method of the package and the classical peers, side by side."""
