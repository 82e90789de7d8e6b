"""zray: JSON episode scripts in, finished multi-language videos out, on Ray."""

__version__ = "0.1.0"
