"""Tasks: what each kind of model needs from the loop (see ``opskit.train.tasks.base``)."""
