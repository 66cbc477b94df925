"""URLs: path() with converters under include(), and a re_path() for the old catalog links."""

from __future__ import annotations

from django.urls import include, path, re_path

from examples.inventory import views

items = [
    path("", views.list_items),
    path("<int:item_id>/", views.get_item),
    path("<int:item_id>/reserve/", views.reserve),
]

urlpatterns = [
    path("health", views.health),
    path("items/", include(items)),
    re_path(r"^catalog/(?P<sku>[A-Z0-9-]+)/$", views.legacy_sku),
    path("admin/faults", views.admin_faults),
]
