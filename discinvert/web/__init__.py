"""``discinvert serve``: an interactive page to invert, refine, edit and interpolate pictures (``docs/web.md``).

Needs the ``web`` extra (``pip install "discinvert[web]"``: FastAPI, uvicorn, python-multipart,
Pillow). The modules, one concept each:

- :mod:`~discinvert.web.uploads`: uploaded pictures in (PNG/JPEG, limits, conversions), PNGs out;
- :mod:`~discinvert.web.session`: what the page can do with one inverter, one request at a time;
- :mod:`~discinvert.web.sources`: the example pictures and the edit directions;
- :mod:`~discinvert.web.app`: the FastAPI application, the page and its JSON API;
- :mod:`~discinvert.web.server`: running it (uvicorn on a socket bound here).

>>> from discinvert import zoo                                          # doctest: +SKIP
>>> from discinvert.web import WebSession, create_app, start            # doctest: +SKIP
>>> G, D, inv = zoo.load(inverter="real-images")                        # doctest: +SKIP
>>> running = start(create_app(WebSession(inv, description="zoo DCGAN")))  # doctest: +SKIP
>>> running.url, running.stop()                                         # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util

_MISSING = [name for name in ("fastapi", "uvicorn", "python_multipart", "PIL") if importlib.util.find_spec(name) is None]
if _MISSING:  # pragma: no cover - depends on the installation
    raise ImportError(f"discinvert.web needs the 'web' extra ({', '.join(_MISSING)} missing): "
                      "pip install \"discinvert[web]\"", name=_MISSING[0])

from discinvert.web.app import create_app
from discinvert.web.server import Running, start
from discinvert.web.session import Busy, Examples, Limits, WebSession

__all__ = ["Busy", "Examples", "Limits", "Running", "WebSession", "create_app", "start"]
