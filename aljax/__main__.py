"""``python -m aljax ...``: the same as the ``aljax`` console script."""

import sys


def main() -> int:
    from aljax import interrupt

    interrupt.install()  # before the heavy imports: Ctrl-C during them ends the command too
    try:
        from aljax.cli import main as cli_main

        return cli_main()
    finally:
        interrupt.settle()


if __name__ == "__main__":
    sys.exit(main())
