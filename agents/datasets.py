"""Datasets' cases: imported from JSONL or CSV (bounded, every bad line reported, nothing
half-imported), exported as JSONL, and taken from finished jobs."""
