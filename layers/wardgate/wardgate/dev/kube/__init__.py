"""A local Kubernetes API server double for ``wardgate dev`` and the tests (see ``catalog.py``)."""
