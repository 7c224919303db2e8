"""``python -m bayescale``: the ``bayescale`` command."""

from bayescale.cli import entry

if __name__ == "__main__":
    entry()
