"""Import before onnx: Debian's onnx 1.12 still uses the numpy aliases
(np.float, np.int, np.bool, np.object, np.str, np.complex) that numpy 1.24
removed; this puts them back, once, for every e2e script."""
import warnings

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for _alias, _type in (("float", float), ("int", int), ("bool", bool),
                          ("object", object), ("str", str), ("complex", complex)):
        if not hasattr(np, _alias):
            setattr(np, _alias, _type)
