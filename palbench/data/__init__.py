"""Datasets: the canonical on-disk format, importers, the built-in synthetic benchmark, torch datasets."""
