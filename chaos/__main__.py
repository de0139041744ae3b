"""``python -m chaos`` and the ``chaos`` console script: the command of :mod:`chaos.cli`.

The harness needs the ``chaos`` extra (numpy, rich, matplotlib); without it the command says
so in one line, with exit status 2 (the harness could not run), instead of a traceback.
"""

import sys

_HARNESS_EXTRA = frozenset({"numpy", "rich", "matplotlib"})


def main() -> int:
    """Run the ``chaos`` command; returns its exit status."""
    try:
        from chaos.cli import main as run
    except KeyboardInterrupt:  # Ctrl-C while importing: nothing was started yet
        print("chaos: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as error:
        missing = (error.name or "").partition(".")[0]
        if missing not in _HARNESS_EXTRA:
            raise
        print(
            f"chaos: error: {missing} is not installed; the harness needs the 'chaos' "
            "extra: pip install 'resilient-chaos[chaos]'",
            file=sys.stderr,
        )
        return 2
    return run()


if __name__ == "__main__":
    sys.exit(main())
