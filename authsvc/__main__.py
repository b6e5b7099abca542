"""`python -m authsvc`: the command line (authsvc.cli)."""

from authsvc.cli import main

raise SystemExit(main())
