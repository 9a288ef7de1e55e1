"""`python -m voicefake` runs the command-line interface."""

from voicefake.cli import main

raise SystemExit(main())
