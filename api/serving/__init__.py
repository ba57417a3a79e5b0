"""How ``dialogd serve`` runs gunicorn: its settings (:mod:`api.serving.settings`),
its worker (:mod:`api.serving.worker`) and its JSON access log
(:mod:`api.serving.access_log`).

They are code of the package, imported, not a file found by path: an installed
``dialogd`` serves exactly as a checkout does, and a broken setting fails at start.
"""
