from django.db import models


class Item(models.Model):
    """One row of the django-heavy page."""

    name = models.CharField(max_length=40)
    description = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=8, decimal_places=2)
    stock = models.IntegerField()

    class Meta:
        app_label = "benchdjango"
