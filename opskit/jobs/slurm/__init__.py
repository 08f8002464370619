"""The same training job handed to Slurm over SSH (``run-remote --scheduler slurm``): not a
scheduler of opskit's own.

- :mod:`.parse`: what ``sbatch --parsable``, ``scontrol -o show job`` and ``sinfo`` print
  (Slurm 22.05 formats), job states and pending reasons in words (pure);
- :mod:`.script`: the sbatch script (one task per node, the image run by ID, torchrun with
  the allocation's first node as rank 0, a sentinel JSON written at the end) (pure);
- :mod:`.sentinel`: the sentinel the script writes (exit code, timestamps, sha256 manifest)
  and the checks made on it (pure);
- :mod:`.cluster`: the Slurm commands over the login host's connection;
- :mod:`.sweep`: the run's containers left on its nodes once the job ended, removed (cancel, collect);
- :mod:`.run`: the phases (check, image, nodes, ship, submit, follow, collect) and the
  commands on a submitted run (jobs, logs, cancel, collect).
"""
