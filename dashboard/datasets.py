"""Dataset pages: list, cases, import and export, and adding jobs."""

urlpatterns: list = []
