"""Experiment statistics on plain numbers: means with 95 % intervals, pass rates, wins and
losses, and whether a difference is larger than its noise."""
