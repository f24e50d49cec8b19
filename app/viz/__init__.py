"""Plotly figures built from lesson results (numbers in, figure dicts out): no HTTP, no torch."""
