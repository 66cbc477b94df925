"""Root URLconf: path(), include(), re_path() with named and unnamed groups."""

from django.urls import include, path, re_path

from tests.integrations.djproject import views

urlpatterns = [
    path("", views.index),
    path("health", views.index),
    path("api/", include("tests.integrations.djproject.api_urls")),
    re_path(r"^legacy/(?P<year>[0-9]{4})/$", views.legacy),
    re_path(r"^archive/([0-9]{4})/([0-9]{2})/$", views.archive),
    re_path(r"^v1/", include("tests.integrations.djproject.api_urls")),
    path("boom/", views.boom),
    path("sleep/<int:seconds>/", views.sleep),
    path("pause/<int:ms>/", views.pause),
    path("async/pause/<int:ms>/", views.async_pause),
]
