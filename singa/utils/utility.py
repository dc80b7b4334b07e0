"""Default names of layers and params (SINGA's LAYERID/PARAMID counters) and ``setval``.

``generate_name(label, option=0, withnumber=True)`` works exactly as SINGA v0.3's
(SINGA-V0.md 1.2): ``option=1`` first increments LAYERID (PARAMID when ``label == 'param'``),
``option=2`` returns LAYERID+1 without incrementing, and the result is ``label + str(number)``
(just ``label`` when ``withnumber`` is False). So the mnist MLP gets ``layer1..layer6``,
``stanh1..``, ``softmax6``, params ``w1..w6``/``b1..b6`` and data layers ``data0``.

Deliberate difference: SINGA never reset the counters, so a second model built in the same
process got other names (``layer7``...) than the first. Here every Model constructor calls
``reset_names()``, so each model is named as if it were the first one of a fresh process.
Data layers made before the Model (``load_data``) are renamed ``data0`` when the model takes
them in, which is the name SINGA gave them in a fresh process (see ``singa.model``).
"""
from singa.utils.message import setval  # noqa: F401  (SINGA's utility module had setval)

LAYERID = 0
PARAMID = 0
# bumped by every reset; a layer remembers the epoch it was named in
NAME_EPOCH = 0


def generate_name(label, option=0, withnumber=True):
    """``label`` followed by the layer (or, for 'param', the param) counter; see the module doc."""
    global LAYERID, PARAMID
    if label == "param":
        if option == 1:
            PARAMID += 1
        num = PARAMID
    else:
        if option == 1:
            LAYERID += 1
        num = LAYERID + 1 if (option == 2 and label != "layer") else LAYERID
    if not withnumber:
        return str(label)
    return "%s%d" % (label, num)


def reset_names():
    """Start the layer and param counters again at 0 (called by every Model constructor)."""
    global LAYERID, PARAMID, NAME_EPOCH
    LAYERID = 0
    PARAMID = 0
    NAME_EPOCH += 1
    return NAME_EPOCH


def name_epoch():
    """How many times the counters were reset; tells which model a layer was named for."""
    return NAME_EPOCH
