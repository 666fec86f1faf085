"""Masking of sensitive values in responses on their way back to agents (in-process, stdlib only).

``detectors`` says what is found and how look-alikes are told apart; ``engine`` says how values
are replaced (mask formats), how JSON, SQL rows and HTTP bodies are handled, and the limits.
"""

from wardgate.masking.detectors import BUILTIN_DETECTORS, Detector, card_brand, luhn, shape
from wardgate.masking.engine import (
    DEFAULT_PROFILE,
    FIELD,
    FIELD_MASK,
    MaskingProfile,
    MaskingRefused,
    MaskResult,
    compile_path,
    find_values,
    mask_body,
    mask_json,
    mask_rows,
    mask_text,
)

__all__ = [
    "BUILTIN_DETECTORS",
    "DEFAULT_PROFILE",
    "FIELD",
    "FIELD_MASK",
    "Detector",
    "MaskResult",
    "MaskingProfile",
    "MaskingRefused",
    "card_brand",
    "compile_path",
    "find_values",
    "luhn",
    "mask_body",
    "mask_json",
    "mask_rows",
    "mask_text",
    "shape",
]
