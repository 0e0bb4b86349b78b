"""Benchmarks: measure the loader against the simulator over real HTTP; print figures, assert nothing.

``python -m benchmarks.run`` (``make bench``) is the entry point; ``simserver``
serves a tenant in its own process, ``scenario`` runs one measured scenario in
a fresh process so that peak memory figures do not mix.
"""
