"""(stub: the overview's per-minute and per-hour buckets, filled in by this issue's work)"""
