"""The TCP gateway's Kubernetes listener: every kubectl verb over HTTPS, streaming ones included.

``listener.py`` serves HTTP/1.1 (h11) on TLS; request/response verbs go through the Lambda path's
``HttpGateway`` unchanged, watches and followed logs are streamed (``streams.py``), exec, attach
and port-forward are upgraded connections (``upgrades.py``, WebSocket frames by wsproto, the
Kubernetes channel framing by ``channels.py``). docs/tcp-gateway.md describes the design.
"""
