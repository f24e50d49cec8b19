"""Benchmarks that print what the app costs next to plain PyTorch: ``python -m bench``."""
