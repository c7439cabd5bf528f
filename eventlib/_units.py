"""brainunit quantities at the layer boundary: the operators see plain
arrays, the result carries the product of the input and weight units."""

from __future__ import annotations

import brainunit as u


def split(x):
    """``(mantissa, unit or None)``."""
    if isinstance(x, u.Quantity):
        return x.mantissa, x.unit
    return x, None


def attach(y, *units):
    units = [unit for unit in units if unit is not None]
    if not units:
        return y
    unit = units[0]
    for other in units[1:]:
        unit = unit * other
    return u.maybe_decimal(u.Quantity(y, unit=unit))
