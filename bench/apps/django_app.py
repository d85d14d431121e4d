"""The Django scenarios' WSGI entry point: the project bench/apps/benchdjango.

    /        django: a plain-text "Hello, World!" through CommonMiddleware
    /items   django-heavy: an ORM query of 20 rows from sqlite, rendered by a template

The sqlite file is bench/.data/django.sqlite3, made by run.py before the
servers start (python -m benchdjango.prepare), never by a request.
"""

import os
import sys

# uWSGI loads this file by path (--wsgi-file): the project beside it must be importable.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchdjango.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402 (needs the settings module set)

application = get_wsgi_application()
