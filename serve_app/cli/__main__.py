"""`python -m serve_app.cli`: the `smmf` command."""

import sys

from serve_app.cli import main

sys.exit(main())
