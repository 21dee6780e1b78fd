"""``python -m nnx``: the `nnx` command (``info``, ``sweep``)."""

from nnx.cli import main

raise SystemExit(main())
