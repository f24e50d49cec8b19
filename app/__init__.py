"""PyTorch Explorer: PyTorch's core ideas, explored visually with real PyTorch on the server."""
