"""`kubectl modelwerk`: the console script's entry point (`kubectl-modelwerk`), kept here so the
installed script and `python -m modelwerk.kubectl_plugin` stay as they were. The plugin itself
is the package modelwerk/plugin/: client (kubectl), records (the documents), render (the human
output) and cli (the subcommand table)."""

from __future__ import annotations

import sys

from modelwerk.plugin import *  # noqa: F403  (the plugin's public names, as before the split)
from modelwerk.plugin import __all__ as __all__
from modelwerk.plugin.cli import main as main

if __name__ == "__main__":
    sys.exit(main())
