"""postermap: a large image collection as one zoomable map of visual similarity."""

__version__ = "0.1.0"
