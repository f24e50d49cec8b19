"""Plotly figures built from lesson results (plain numbers in, figure dicts out): no HTTP, no torch."""
