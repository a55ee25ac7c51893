"""`python -m loadbench` runs the CLI."""

from .cli.main import main

raise SystemExit(main())
