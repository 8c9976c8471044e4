"""The composition root: the one package that imports every part of the hub and wires them.

``server.parts`` lists the parts (one line each), ``server.compose`` builds a hub and its web
application from them, ``server.cli`` is the ``hub`` command. Nothing else imports this package
(tests and benchmarks aside); the import rules in ``pyproject.toml`` keep it so.
"""
