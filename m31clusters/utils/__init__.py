"""
Private helpers shared across m31clusters modules (``_*.py``).

Nothing here is public API.
"""

__all__ = []
