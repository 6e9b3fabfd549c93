"""PyInstaller entry point: usable std streams first, before anything imports transformers."""

import sys


def run() -> int:
    from hsviewer._frozen import fix_std_streams

    fix_std_streams()
    from hsviewer.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(run())
