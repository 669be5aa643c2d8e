#!/usr/bin/python3
"""Reference detections for tests/test_post.c (issue 18).

usage: post_ref.py MODELS_DIR OUT_DIR

Independent of post/: each head is decoded here in NumPy from the heads'
published definitions, and NMS is torchvision.ops.batched_nms (Debian's
python3-torch / python3-torchvision). The heads are

  * the real exported nets' outputs (tools/export_models.py, torch's own
    output for its fixed input): yolo_320 (YOLOv5 layout [1, N, 5 + 80]),
    yolov8_dfl_conv_160 (YOLOv8 [1, 4 + 80, N]), yolo_pose_320 (YOLOv5
    pose, 1 class + 17 keypoints) and yolov8_pose_160 (YOLOv8 pose), each
    at a low threshold (many overlapping candidates; on yolo_320 every one
    of the 80 classes is some candidate's best, asserted here), a usual one,
    and one nothing passes (an empty result);
  * synthetic heads in both layouts of both kinds: clusters of jittered
    boxes whose IoUs spread across the threshold, five classes overlapping
    (all five present, asserted), uncapped and capped at 7.

Writes OUT_DIR/cases.txt, one case a line:
  name kind score_threshold iou_threshold max_detections keypoints head.npy
and per case name_boxes.npy (float32 [n, 4], x0 y0 x1 y1 in input pixels,
best first), name_scores.npy, name_classes.npy (int32), name_kpts.npy
(float32 [n, K, 3]).
"""
import os
import sys

import numpy as np
import torch
import torchvision


def decode(head, kind, thr, K):
    """Candidates over thr: corners, scores, classes, keypoints (float32).
    head: [1, N, F] rows (yolov5's order) or [1, F, N] (yolov8's); the
    attributes lie along the shorter of the last two dims."""
    x = head.reshape(head.shape[-2:]).astype(np.float32)
    a, b = x.shape
    transposed = a < b or (a == b and kind == "yolov8")
    if transposed:
        x = x.T
    base = 5 if kind == "yolov5" else 4
    C = x.shape[1] - base - 3 * K
    cls = x[:, base:base + C]
    best = cls.max(1)
    arg = cls.argmax(1).astype(np.int32)
    score = best * x[:, 4] if kind == "yolov5" else best
    keep = score > np.float32(thr)
    cx, cy, w, h = (x[keep, i] for i in range(4))
    half_w, half_h = w / np.float32(2), h / np.float32(2)
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], 1).astype(np.float32)
    kp = x[keep, base + C:base + C + 3 * K].reshape(int(keep.sum()), K, 3)
    return boxes, score[keep].astype(np.float32), arg[keep], kp, C


def reference(head, kind, thr, iou, max_det, K):
    boxes, scores, classes, kp, C = decode(head, kind, thr, K)
    keep = torchvision.ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                                       torch.from_numpy(classes.astype(np.int64)), iou)
    keep = keep[:max_det].numpy()
    return boxes[keep], scores[keep], classes[keep], kp[keep], classes, C


def synthetic(kind, transposed, K, seed, C=5, clusters=12, per=40):
    """Clusters of boxes jittered about a centre (IoUs across the usual
    thresholds), classes drawn from C, scores distinct."""
    r = np.random.default_rng(seed)
    rows = []
    for _ in range(clusters):
        cx, cy = r.uniform(40, 600, 2)
        w, h = r.uniform(20, 200, 2)
        for _ in range(per):
            j = r.normal(0, 0.08, 4)
            box = [cx + j[0] * w, cy + j[1] * h, w * (1 + j[2]), h * (1 + j[3])]
            cls = np.full(C, 0.0)
            cls[r.integers(C)] = r.uniform(0.05, 1.0)
            cls += r.uniform(0, 0.04, C)
            obj = [r.uniform(0.1, 1.0)] if kind == "yolov5" else []
            kp = []
            for _k in range(K):
                kp += [cx + r.normal(0, w / 3), cy + r.normal(0, h / 3), r.uniform()]
            rows.append(box + obj + list(cls) + kp)
    # background candidates far below any threshold
    F = len(rows[0])
    for _ in range(200):
        rows.append(list(r.uniform(0, 640, 4)) + [0.001] * (F - 4))
    x = np.array(rows, dtype=np.float32)
    x = x[r.permutation(len(x))]
    return np.ascontiguousarray((x.T if transposed else x)[None])


def main(models_dir, out):
    os.makedirs(out, exist_ok=True)
    cases = []
    real = [("yolo_320", "yolov5", 0, [(0.2, 0.45, 300), (0.3, 0.5, 100), (0.99, 0.45, 300)]),
            ("yolov8_dfl_conv_160", "yolov8", 0, [(0.05, 0.45, 300), (0.45, 0.6, 50), (0.999, 0.45, 300)]),
            ("yolo_pose_320", "yolov5", 17, [(0.2, 0.45, 300), (0.4, 0.65, 30), (0.99, 0.45, 300)]),
            ("yolov8_pose_160", "yolov8", 17, [(0.3, 0.45, 300), (0.6, 0.65, 30), (0.999, 0.45, 300)])]
    heads = {}
    for m, kind, K, params in real:
        head = np.load(os.path.join(models_dir, m, "output_0.npy")).astype(np.float32)
        hp = os.path.join(out, m + "_head.npy")
        np.save(hp, head)
        for i, (thr, iou, md) in enumerate(params):
            cases.append((f"{m}_{i}", kind, thr, iou, md, K, hp, head))
    for kind in ("yolov5", "yolov8"):
        for t in (0, 1):
            for K in (0, 3):
                head = synthetic(kind, t, K, seed=len(cases))
                name = f"syn_{kind}_{'cols' if t else 'rows'}_k{K}"
                hp = os.path.join(out, name + "_head.npy")
                np.save(hp, head)
                heads[name] = head
                cases.append((name, kind, 0.25, 0.5, 1000, K, hp, head))
                cases.append((name + "_cap", kind, 0.25, 0.5, 7, K, hp, head))
    with open(os.path.join(out, "cases.txt"), "w") as f:
        for name, kind, thr, iou, md, K, hp, head in cases:
            b, s, c, kp, cand_classes, C = reference(head, kind, thr, iou, md, K)
            if name == "yolo_320_0" or name.startswith("syn_"):
                present = len(set(cand_classes.tolist()))
                assert present == C, f"{name}: only {present} of {C} classes pass the threshold"
            for what, arr in (("boxes", b), ("scores", s), ("classes", c.astype(np.int32)),
                              ("kpts", kp.astype(np.float32))):
                np.save(os.path.join(out, f"{name}_{what}.npy"), np.ascontiguousarray(arr))
            f.write(f"{name} {kind} {thr!r} {iou!r} {md} {K} {hp}\n")
            print(f"{name}: {len(cand_classes)} candidates over {thr}, {len(b)} kept "
                  f"({len(set(c.tolist()))} classes)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
