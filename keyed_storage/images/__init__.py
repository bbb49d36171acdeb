"""Images: variant specs and their names (variants.py), making them (rendering.py), removing
identifying metadata (privacy.py) and what a page shows of them (markup.py)."""

from .variants import ImageRefused, Variant

__all__ = ["ImageRefused", "Variant"]
