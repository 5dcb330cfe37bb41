"""Output: histograms, tables, JSON, escaping of kernel strings, and name tables."""
