"""Operations: health (``/healthz`` and the ``portal.health`` task) and operators' commands
(``bootstrap``, ``runall``)."""
