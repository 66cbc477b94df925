"""Included under api/."""

from django.urls import path

from tests.integrations.djproject import views

urlpatterns = [
    path("", views.index),
    path("orders/<int:order_id>/", views.order),
    path("async/orders/<int:order_id>/", views.async_order),
    path("items/<slug:item_id>/", views.missing),
]
