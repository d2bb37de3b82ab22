"""``python -m postermap`` runs the CLI."""

from postermap.cli import main

main()
