"""``python -m fulmen``: the same as the ``fulmen`` command."""

from fulmen.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
