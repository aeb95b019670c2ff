"""Storage adapters. The embedded default: SQLite for the log and person state, DuckDB
for analytics. They import `tsunagu.core` only."""
