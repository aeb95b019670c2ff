"""Where Datahub imports read from: each module turns one kind of source into Arrow record
batches; the importer (not here) types, checks and stores them.

Every source answers a streaming `pyarrow.RecordBatchReader` whose first column is
`__line` (int64): where the row is in the source, as a person would find it (the
spreadsheet's row number, the row's ordinal in a query's result), so a reject report
points at the row to fix. The source's own columns follow, named as in the source.
Adapters: they import `tsunagu.core` only.
"""
