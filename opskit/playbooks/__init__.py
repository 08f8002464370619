"""The engine behind ``opskit play``: playbooks (YAML) of steps over opskit's own operations.

``yamlines`` reads YAML keeping each key's line; ``schema`` turns it into plays and steps
(errors name file, line and key); ``expr`` is the safe evaluator of ``when:`` and ``{{ }}``;
``hostfacts`` the facts a ``when:`` can read; ``actions`` the step types; ``engine`` runs plays
over hosts (bounded parallelism, ``serial`` per play and per step, failure limits); ``record``
keeps a folder per play run (JSON Lines events and the recap).
"""
