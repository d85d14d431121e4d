"""Builds bench/.data/django.sqlite3: the Item table and its 20 rows.

    python -m benchdjango.prepare      (from bench/apps; run.py does it before the servers start)

The file is built under a temporary name and renamed into place, so that a
server never opens a half-written database.
"""

import os
from decimal import Decimal

ROWS = 20


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchdjango.settings")
    from benchdjango import settings as project

    final = project.DATABASES["default"]["NAME"]
    partial = final + ".partial"
    if os.path.exists(partial):
        os.unlink(partial)
    project.DATABASES["default"]["NAME"] = partial  # read by django.setup(), below

    import django

    django.setup()
    from django.db import connection

    from benchdjango.models import Item

    with connection.schema_editor() as editor:
        editor.create_model(Item)
    Item.objects.bulk_create(
        Item(
            id=i,
            name=f"item-{i:02d}",
            description=f"Sample product {i} & its description, long enough to look like a real row",
            price=Decimal(i * 125) / 100,
            stock=(i * 7) % 11,
        )
        for i in range(1, ROWS + 1)
    )
    connection.close()
    os.replace(partial, final)


if __name__ == "__main__":
    main()
