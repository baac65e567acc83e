"""``python -m convoyrisk``: the command line."""

from convoyrisk.cli import main

main()
