"""`python -m monitor` is the same as the `liqmon` command."""

from monitor.cli import main

raise SystemExit(main())
