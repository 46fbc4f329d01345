"""The export of a study: its best config, in the format ``trainables.train`` reads, and its tables."""
