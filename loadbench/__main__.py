"""`python -m loadbench` runs the CLI."""

from .cli import main

raise SystemExit(main())
