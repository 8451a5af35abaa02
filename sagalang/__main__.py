"""``python -m sagalang``."""

from .cli import main

main()
