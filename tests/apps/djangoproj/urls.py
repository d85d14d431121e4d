from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("hello/<str:name>/", views.hello),
    path("items/<int:item_id>/", views.item),
    path("query/", views.query),
    path("csrf/", views.csrf),
    path("form/", views.form),
    path("upload/", views.upload),
    path("json/", views.json_echo),
    path("boom/", views.boom),
    path("stream/", views.stream),
    path("file/", views.file),
    path("whoami/", views.whoami),
    path("headers/", views.headers),
    path("wait-echo/", views.wait_echo),
]
