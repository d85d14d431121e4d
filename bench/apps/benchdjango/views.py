from django.http import HttpResponse
from django.shortcuts import render

from .models import Item


def hello(request):
    """The django scenario: the 13-byte body of hello, through Django's whole request path."""
    return HttpResponse(b"Hello, World!", content_type="text/plain")


def items(request):
    """The django-heavy scenario: a query of every row, rendered by a template with a loop."""
    rows = Item.objects.order_by("id")
    return render(request, "benchdjango/items.html", {"items": rows, "title": "Inventory"})
