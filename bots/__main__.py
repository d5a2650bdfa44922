"""``python -m bots`` is ``threadkeeper``."""

from bots.cli import main

raise SystemExit(main())
