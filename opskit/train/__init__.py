"""Training: runs inside the image and locally (``opskit train``). torch + stdlib only.

Usage::

    python -m opskit.train resnet18 --small --epochs 2 --out runs/r18
    python -m opskit.train resnet50 --data synthetic --amp --channels-last --steps 200
    python -m opskit.train lenet --small --data my.npz --model-arg num_classes=3
    torchrun --nproc_per_node=2 -m opskit.train resnet18 --small --steps 100   # DDP
    python -m opskit.train resnet18 --small --epochs 2 --out runs/r18 --resume

``--out`` holds ``metrics.jsonl`` (train lines every ``--log-every`` steps, eval lines after
each epoch), ``summary.json`` (``"status"``: completed | interrupted | failed; ``"final"``:
the last evaluation), ``run_card.json`` and ``checkpoints/last.pt``. Exit codes: 0 done,
2 bad input (unknown model, input too small, bad checkpoint or data file, no GPU for
``--device cuda``), 1 failure, 143 after SIGTERM (checkpoint written first; ``--resume``
continues with the same result as an uninterrupted run on CPU). Under torchrun only rank 0
writes; torchrun itself exits 1 after a SIGTERM, summary.json still says "interrupted".

Modules: ``entry`` (main/train), ``args``, ``loop`` (Trainer), ``tasks/`` (the Task API in
``tasks.base``), ``data/`` (generated shapes, synthetic tensors, .npz files, image folders),
``checkpoint``, ``metrics``, ``distributed``, ``errors``, ``torchrun`` (torchrun for one node of
a multi-host job: a signal's exit is 128+N; workers forked warm), ``preload`` (what every
training process imports, imported once by that launcher). Importing this package does no work.
"""
