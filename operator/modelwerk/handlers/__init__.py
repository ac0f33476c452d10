"""kopf handlers: each a few lines that feed the caches and queue keys for the reconcilers.

All are watch-event handlers: level-based (every event leads to a full reconcile of the current
state), and kopf stores nothing in the objects for them.
"""

from modelwerk import settings  # noqa: F401  (registers the kopf settings and login)
from modelwerk.handlers import events, lifecycle  # noqa: F401
