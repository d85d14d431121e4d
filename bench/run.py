#!/usr/bin/env python3
"""fulmen's benchmark pipeline: one command, all servers, all scenarios.

    python bench/run.py                        # every server, every scenario but ab
    python bench/run.py --quick                # smoke run: every server starts and answers
    python bench/run.py --servers fulmen,nginx-static --scenarios hello,pipeline
    python bench/run.py --scenarios ab --servers fulmen,nginx-static
    python bench/run.py --list                 # servers and scenarios

Works with any Python >= 3.10. It creates its own virtual environment,
bench/.venv, installs the peers from PyPI (each on its own, so that one that
fails to build is reported and the rest still run) and fulmen from this
repository, then re-runs itself inside it. The method, what each number means
and the caveats are in bench/README.md; the code is the package fulmenbench/
beside this file (its __init__ says which module holds what).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fulmenbench.cli import main  # noqa: E402 (after the path it is found on)

if __name__ == "__main__":
    sys.exit(main())
