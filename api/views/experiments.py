"""API: experiment pages: new, live progress, compare, export, and the annotation queue."""

urlpatterns: list = []
