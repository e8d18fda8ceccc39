"""``python -m mrs_numerics`` = the ``mrs-numerics`` command."""

from mrs_numerics.cli import main

raise SystemExit(main())
