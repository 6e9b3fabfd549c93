"""Results kept: the runs library, provenance, comparison, and files written whole or not at all."""
