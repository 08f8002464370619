"""Training: runs inside the image and locally (``opskit train``). torch + stdlib only.

``python -m opskit.train MODEL [options]`` is ``opskit.train.entry.main(argv)``. Importing this
package does no work.
"""
