"""A fake of the Certiverse Voucher Partner API for the demo, tests and benchmarks.

``Tenant`` holds the data and its clock, ``SimulatorApp`` answers HTTP
requests about it (in process through ``app.transport()``), and ``serve`` /
``run_forever`` put it on a real loopback socket.
"""

from .app import SimulatorApp
from .data import SIZES, Tenant, ValidationError
from .infrastructure import Outage, RateLimit
from .server import run_forever, serve
from .shape import WorldShape

__all__ = ["SIZES", "Outage", "RateLimit", "SimulatorApp", "Tenant", "ValidationError", "WorldShape", "run_forever",
           "serve"]
