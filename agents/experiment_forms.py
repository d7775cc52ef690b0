"""The write rules for experiments, shared by the pages and the API."""
