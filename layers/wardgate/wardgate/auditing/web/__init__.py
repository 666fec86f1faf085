"""The auditors' replay page: sign-in with the identity provider, search, timelines, terminal replay.

``app.py`` routes API Gateway events (``functions/audit_page``; ``wardgate dev`` serves the same
routes), ``signin.py`` runs the authorization code flow with PKCE, ``sealing.py`` seals the
cookies, ``records.py`` reads the recordings through the query engine and checks their integrity,
``views.py`` renders HTML, ``static/`` holds the script, the stylesheet and the vendored
asciinema-player. See docs/auditors.md.
"""
