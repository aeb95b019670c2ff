"""tsunagu (つなぐ): one person, one timeline, across web, app and store."""

__version__ = "0.1.0"
__all__ = ["__version__"]
