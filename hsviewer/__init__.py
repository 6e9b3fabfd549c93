"""hsviewer: how much of a language model's hidden state survives dimensionality reduction."""

__version__ = "0.1.0"
