"""Settings of the benchmark's Django project: production-like (DEBUG off), one middleware."""

import os

DATA = os.environ.get("BENCH_DATA") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".data")

SECRET_KEY = "fulmen-bench-only"  # nothing here is signed or kept: the benchmark has no sessions
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "benchdjango.urls"
INSTALLED_APPS = ["benchdjango"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        # Built by prepare.py under another name, then renamed to this one.
        "NAME": os.path.join(DATA, "django.sqlite3"),
    }
}
# With DEBUG off Django wraps the app-directories loader in its cached loader:
# the template is compiled once per process.
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
