"""A stand-in for torchvision in the corpus's plain-Python runs (tests/sandbox/corpus_runner.py).

This machine's CPU PyTorch cannot load the torchvision wheel, so the plain side of the corpus
imports this small pure-PyTorch package instead. It has only ``transforms`` (with torchvision's
semantics for what the scripts use) and no ``datasets``, like the sandbox, which serves
``torchvision.transforms`` from the Transforms lesson and refuses the downloading data sets.
It is written from torchvision's documented behaviour, independently of ``app.sandbox``, so the
corpus compares two implementations, not one with itself.
"""

from torchvision import transforms

__all__ = ["transforms"]
