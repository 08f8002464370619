"""Object detection: box arithmetic, anchors, region pooling, mAP, and two detectors.

* ``boxes``: IoU, NMS, the Faster R-CNN box coder, matching and sampling.
* ``anchors``: anchor boxes tiled over a feature map.
* ``roi``: RoIPool and RoIAlign written in plain torch (no torchvision).
* ``metrics``: mAP@0.5 as PASCAL VOC defines it.
* ``yolo``: a one-stage, YOLO-style detector (``yolo``).
* ``faster_rcnn``: a compact two-stage detector, RPN + RoIAlign + head (``faster_rcnn``).

Both detectors share one interface: ``forward(images)`` gives raw outputs (for shape and
throughput checks), ``loss(images, boxes, labels)`` the training losses for padded targets
(``labels == -1`` marks padding), and ``detect(images)`` a list of
``{"boxes", "scores", "labels"}`` per image. Importing this package registers both models.
"""

from opskit.models.detection import faster_rcnn, yolo  # noqa: F401  (registers the models)
