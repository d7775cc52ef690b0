from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from api import handlers as api_handlers
from api import pages as api_pages
from dashboard import prometheus

handler400 = api_handlers.bad_request

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # API tokens moved to the agents app (agents/credentials.py): old admin links still work.
    re_path(
        r"^admin/api/apitoken/(?P<rest>.*)$",
        RedirectView.as_view(url="/admin/agents/apitoken/%(rest)s", permanent=True),
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", include("api.urls")),
    path("account/tokens/", api_pages.tokens, name="api-tokens"),
    path("account/tokens/<int:token_id>/revoke/", api_pages.token_revoke, name="api-token-revoke"),
    path("webhooks/", include("webhooks.urls")),
    path("metrics", prometheus.metrics, name="metrics"),
    path("", include("dashboard.urls")),
]
