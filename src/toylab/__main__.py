"""``python -m toylab`` and the ``toylab`` command: the CLI, with Ctrl-C answered from the first line.

The CLI's own handler (:class:`toylab.cli._Toylab`) turns Ctrl-C during a command into one
line and exit status 130. Two windows lie outside it, and are closed here:

* start-up: importing the CLI (typer, rich, pydantic) and building its commands take a few
  tenths of a second before any command runs; a Ctrl-C there would print a
  KeyboardInterrupt traceback;
* Python drops a KeyboardInterrupt raised while a garbage-collector callback or a
  ``__del__`` runs (it prints "Exception ignored in ..." and carries on): JAX registers such
  a callback, and a Ctrl-C during ``import jax`` often lands in it, so the command went on
  as if nothing had been pressed. The unraisable hook below delivers the interrupt again, to
  the code that was running.
"""

import _thread
import signal
import sys
import threading

# Long enough for the main thread to leave the callback that swallowed the interrupt: raised at
# once, it would be raised inside the hook itself, and swallowed again.
_REDELIVERY_DELAY = 0.05


def _redeliver_interrupt(unraisable) -> None:
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        timer = threading.Timer(_REDELIVERY_DELAY, _thread.interrupt_main)
        timer.daemon = True  # never holds up the exit of a command that ends first
        timer.start()
        return
    sys.__unraisablehook__(unraisable)


def main() -> None:
    """Run the CLI as the ``toylab`` command does."""
    sys.unraisablehook = _redeliver_interrupt
    try:
        from toylab.cli import main as cli

        cli()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the message
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
