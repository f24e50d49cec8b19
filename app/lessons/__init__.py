"""Pure compute for each concept of the notes: torch, numpy and Pillow only; notebook-friendly."""
