"""The write rules for scorers, shared by the pages and the API."""
