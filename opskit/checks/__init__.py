"""Host checks: the seed's Linux commands (df, ps, nvidia-smi, status) as data.

Each module keeps two layers apart:

- small PURE parsers (``parse_df``, ``parse_ps``, ``parse_query_gpu``, ...) that turn a
  command's text into dataclasses and raise :class:`opskit.errors.ParseError` naming the host
  and the line when the text does not parse; unit-tested on captured real output;
- gatherers that run fixed commands through a :class:`~opskit.hosts.transport.Transport`
  (``opskit.checks.sections`` runs several of them in ONE round trip per host).

Modules: ``disk`` (df), ``procs`` (ps), ``gpu`` (nvidia-smi), ``system`` (os-release, uname,
uptime, loadavg, meminfo), ``dockerinfo`` (docker CLI), ``status`` (one snapshot per host;
``ps`` beside it), ``facts`` (what a run needs of a host: the snapshot and more, one round
trip). File operations (scp, chmod) are in :mod:`opskit.files`.
"""
