"""The embedded Kidal–Gao scenario (installed as ``convoyrisk.scenario``).

``places.csv``, ``roads.geojson`` and ``incidents.csv``, made by ``digitise.py``
from public facts. Code reads them through :mod:`convoyrisk.settings`.
"""
