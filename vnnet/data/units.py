"""Unit conversion of whole numpy arrays with ``pint`` (CF / UDUNITS spellings accepted).

``convert_units(values, "knots", "m s-1")`` converts in one vectorised call; offset units
(degF, K -> degC) are handled by pint's offset-unit arithmetic. Spellings the catalogue treats as
the same unit (``schema._SAME_UNITS``, e.g. ``kg m-2`` for ``mm`` of rain, ``mbar`` for ``hPa``)
pass through unchanged, since pint has no notion of water-equivalent depth.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from vnnet.data.schema import _SAME_UNITS

if TYPE_CHECKING:
    import pint

__all__ = ["convert_units", "parse_units"]

# UDUNITS writes powers as trailing integers ("m s-1", "kg m-2", "m3"); pint needs "**".
_UDUNITS_POWER = re.compile(r"(?<=[A-Za-z])(-?\d+)\b")


@lru_cache(maxsize=1)
def _registry() -> pint.UnitRegistry:
    # Imported and built on first use: the registry takes ~0.2 s and most runs never convert.
    import pint

    ureg = pint.UnitRegistry()
    ureg.define("fraction = 1")  # a ratio spelled as in the station schema ("1" works too)
    return ureg


def parse_units(units: str) -> pint.Unit:
    """Parse a unit string (pint or UDUNITS spelling); ``ValueError`` if it is not a unit."""
    text = str(units).strip()
    if not text:
        raise ValueError("empty unit string")
    try:
        return _registry().parse_units(_UDUNITS_POWER.sub(r"**\1", text))
    except Exception as err:  # pint raises UndefinedUnitError, tokenizer / assertion errors
        raise ValueError(f"unknown unit '{units}'") from err


def convert_units(values: np.ndarray, from_units: str, to_units: str) -> np.ndarray:
    """``values`` (any shape, NaN for missing) in ``from_units`` converted to ``to_units``.

    Returns the input array itself when the two spellings mean the same unit. Raises
    ``ValueError`` naming both units when ``from_units`` is not a unit pint knows, or measures
    another quantity (e.g. knots -> degC; angles and ratios such as % are told apart too).
    """
    if from_units == to_units or from_units in _SAME_UNITS.get(to_units, ()):
        return values
    target = parse_units(to_units)
    try:
        source = parse_units(from_units)
    except ValueError as err:
        raise ValueError(f"{err}; expected '{to_units}' or a unit convertible to it "
                         f"(e.g. {_examples(to_units)})") from None
    ureg = _registry()
    # Root units, not dimensionality: pint counts angles as dimensionless, and % -> degree
    # must not pass as a conversion.
    if ureg.get_root_units(source)[1] != ureg.get_root_units(target)[1]:
        raise ValueError(f"unit '{from_units}' cannot be converted to '{to_units}' (it measures "
                         f"{_dimension(source)}, '{to_units}' measures {_dimension(target)})")
    return ureg.Quantity(np.asarray(values), source).to(target).magnitude


def _dimension(unit: pint.Unit) -> str:
    root = _registry().get_root_units(unit)[1]
    return "a pure number" if root == _registry().dimensionless else f"{unit.dimensionality}"


_EXAMPLES = {
    "m s-1": "'knots', 'km/h', 'mph'", "degC": "'K', 'degF'", "hPa": "'Pa', 'kPa', 'inHg'",
    "m": "'km', 'ft', 'mi'", "mm": "'cm', 'in'", "%": "'1', 'fraction'", "degree": "'rad'",
}


def _examples(units: str) -> str:
    return _EXAMPLES.get(units, f"any unit of {_dimension(parse_units(units))}")
