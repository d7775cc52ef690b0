"""The write rules for datasets and cases, shared by the pages and the API."""
