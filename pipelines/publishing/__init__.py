"""Publishing for readers: a copy of the warehouse that analysts and BI tools open while the loader works.

See :mod:`pipelines.publishing.publish` for what is published and where, and
:mod:`pipelines.publishing.swap` for how it is put in place without a reader ever
seeing a half-written file.
"""

from .publish import Publication, Targets, publish, published_info, working_file
from .swap import PublishError

__all__ = ["Publication", "PublishError", "Targets", "publish", "published_info", "working_file"]
