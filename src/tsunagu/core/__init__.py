"""The pure engine: no I/O, no clock reads, standard library (and msgspec structs) only.

Everything here takes `now` as an argument so that tests can drive weeks of time in
milliseconds and so the same logic runs embedded or as a partitioned consumer.
"""
