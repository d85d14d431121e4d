"""A small Django 5 project for the django and django-heavy scenarios (entry point: ../django_app.py)."""
