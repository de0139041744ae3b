"""chaos: reproduce the 2026 incidents against real servers on loopback, and prove the guards hold.

Layers (imports point down only):

    cli, report                  the `chaos` command and its reports
    scenarios                    one module per incident (the only place patterns come in)
    scenario, load               the engine: topology, fault timeline, open-loop load, verdicts
    toxiproxy, servers           the embedded Toxiproxy drop-in and its control facade; real servers

``chaos.toxiproxy`` imports neither ``resilient`` nor the engine.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
