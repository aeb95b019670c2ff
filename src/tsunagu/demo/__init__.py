"""Demo workspace data: a year of a Japanese fashion retailer's customer events.

Used by ``tsunagu demo --size N``.  See :mod:`tsunagu.demo.generator`.
"""

from tsunagu.demo.generator import JST, STORES, Product, Store, catalog, generate

__all__ = ["JST", "STORES", "Product", "Store", "catalog", "generate"]
