"""(stub: filled in by this issue's work)"""

urlpatterns: list = []
