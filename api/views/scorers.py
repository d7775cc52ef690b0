"""API: scorer pages: list, create and edit."""

urlpatterns: list = []
