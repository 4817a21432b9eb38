"""`python -m fusionseg` is the same as the `fusionseg` console script."""

from fusionseg.cli import main

raise SystemExit(main())
