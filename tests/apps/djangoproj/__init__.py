"""A minimal Django project (no database) served unchanged by fulmen in tests/test_frameworks.py."""
