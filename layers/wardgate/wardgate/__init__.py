"""wardgate: a data-path gateway that checks, records and brokers what AI agents do to production.

The package is shipped as a Lambda layer and imported by the thin handlers in ``functions/``,
by the ``wardgate`` CLI and by the tests, from the same source. Modules stay light at import
time: heavy dependencies (httpx, pyjwt, sqlglot) are imported where first used, because
every import counts against a Lambda cold start.
"""

__version__ = "0.1.0"
