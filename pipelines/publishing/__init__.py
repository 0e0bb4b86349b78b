"""Publishing for readers: a copy of the warehouse that analysts and BI tools open while the loader works.

See :mod:`pipelines.publishing.publish` for what is published and where, and
:mod:`pipelines.publishing.atomic` for how it is put in place without a reader ever
seeing a half-written file.
"""

from .atomic import PublishError
from .publish import Publication, publish, published_info

__all__ = ["Publication", "PublishError", "publish", "published_info"]
