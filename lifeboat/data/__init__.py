"""Versioned data: DVC pull and push, fingerprints and lineage, simulated batches."""
