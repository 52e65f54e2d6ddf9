"""Simulation for benchmarks: an engine without containers (``engine.py``), many simulated
agents in one process against a real manager (``nodes.py``), and a manager in this process
(``manager.py``). Never used by default: see docs/simulation.md."""
