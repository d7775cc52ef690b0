"""Scorer pages: list, create and edit."""

urlpatterns: list = []
