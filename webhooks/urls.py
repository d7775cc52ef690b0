from django.urls import path

from . import views

urlpatterns = [
    path("", views.endpoints, name="webhooks-list"),
    path("<int:endpoint_id>/", views.endpoint, name="webhooks-endpoint"),
    path("deliveries/<int:delivery_id>/resend/", views.resend, name="webhooks-resend"),
]
