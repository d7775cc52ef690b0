"""Datasets and their cases: each write checked, changed, audited in one transaction."""
