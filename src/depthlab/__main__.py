"""``python -m depthlab`` (also how ``torchrun -m depthlab train ...`` starts the CLI)."""

from depthlab.cli import main

raise SystemExit(main())
