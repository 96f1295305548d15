"""Published numbers the project's tables are compared with.

Source: "The Counterattack of CNNs in Self-Supervised Learning: Larger
Kernel Size might be All You Need" (arXiv 2312.05695), Table 5 (DINO
pre-training; ImageNet linear and k-NN top-1, ImageNet-C mCE, Sketch, R and
A top-1 of the linear-probe models), as gathered in
``shared/REFERENCE.md`` section 6. Values are percent; mCE is lower-better.
"""
from typing import Dict, List, Tuple

# (model, epochs) -> metrics
TABLE5_COLUMNS = ('linear', 'knn', 'mCE', 'sketch', 'r', 'a')
_ROWS: List[Tuple[str, int, Tuple[float, ...]]] = [
    ('ResNet-50', 100, (67.1, 58.9, 71.85, 14.77, 15.02, 0.76)),
    ('ViT-S/16', 100, (73.5, 68.8, 59.57, 20.08, 21.89, 3.04)),
    ('Swin-T', 100, (75.0, 69.7, 61.86, 20.16, 20.18, 3.49)),
    ('BC-SSL-T 3x3', 100, (74.0, 68.4, 61.82, 23.18, 21.60, 3.80)),
    ('BC-SSL-T 5x5', 100, (74.4, 68.8, 61.48, 23.45, 22.92, 4.75)),
    ('BC-SSL-T 7x7', 100, (74.5, 69.4, 60.40, 24.55, 22.92, 4.74)),
    ('BC-SSL-T 9x9', 100, (75.0, 70.3, 59.39, 24.55, 22.79, 4.66)),
    ('BC-SSL-T 15x15', 100, (74.5, 69.7, 58.80, 25.33, 23.25, 5.31)),
    ('ResNet-50', 300, (75.3, 67.5, 70.28, 14.24, 14.4, 0.88)),
    ('Swin-T', 300, (77.0, 74.2, 59.39, 21.96, 21.18, 5.34)),
    ('BC-SSL-T 9x9', 300, (77.8, 75.7, 57.44, 25.32, 23.82, 5.72)),
]
PAPER_TABLE5: Dict[Tuple[str, int], Dict[str, float]] = {
    (name, epochs): dict(zip(TABLE5_COLUMNS, values))
    for name, epochs, values in _ROWS
}
