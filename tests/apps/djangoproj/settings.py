"""Settings of the minimal test project: production-like (DEBUG off), no database, no templates."""

SECRET_KEY = "fulmen-test-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]

ROOT_URLCONF = "djangoproj.urls"
WSGI_APPLICATION = "djangoproj.wsgi.application"

INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
DATABASES: dict = {}
TEMPLATES: list = []

USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# With DEBUG off Django's default logging sends request errors only to mail_admins; send them
# to stderr (which fulmen collects) as a production deployment would.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False}},
}
