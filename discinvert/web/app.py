"""The web application: the page, its assets, and the JSON API under ``/api/`` (``docs/web.md``).

Built on FastAPI (the ``web`` extra). Every answer of the API is JSON (or an NDJSON stream for
``/api/refine``, a ``.npy`` file for ``/api/code.npy``); every refusal is a 4xx (or 503 when
busy) with ``{"error": "..."}`` that says in plain words what was expected and what came, never a
traceback or the validator's internals. Request bodies are cut off past
:attr:`Limits.max_upload_bytes` (plus room for the form's own fields) before they are read whole.
The page's files ship inside the package (``discinvert/web/static/``): nothing is fetched from
the internet, which is why there is no ``/api/docs`` (FastAPI's needs a CDN); the API is
documented in ``docs/web.md`` and its schema is at ``/api/openapi.json``.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from discinvert._version import __version__
from discinvert.web.session import Busy, WebSession
from discinvert.web.uploads import PreparedImage, UploadError, png_bytes, read_upload

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable  # Python 3.11+; only read by type checkers

if sys.version_info < (3, 11):  # pragma: no cover - anyio installs the backport there
    from exceptiongroup import BaseExceptionGroup

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

_FORM_ROOM = 64 * 1024  # the multipart framing and the small form fields beside the file


class _TooLarge(Exception):
    """A request body passed the limit while it was read (the app answers 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over {limit:,} bytes: expected at most {limit:,}.")


class _BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets a 413 without being read whole.

    A declared ``Content-Length`` over the limit is refused at once; a body without one (chunked)
    raises :class:`_TooLarge` from ``receive`` as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _error(413, f"request body of {int(declared):,} bytes: expected at most {self.limit:,}.")(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


_EXPECTED = {"int_parsing": "an integer", "int_parsing_size": "an integer", "int_type": "an integer",
             "float_parsing": "a number", "float_type": "a number", "missing": "a value"}


def _plain(errors: Sequence[Any]) -> str:
    """FastAPI's validation errors in plain words: ``index: expected an integer, got 'abc'.`` (no loc/type/url dumps)."""
    sentences = []
    for error in list(errors)[:3]:
        where = [str(part) for part in error.get("loc", ()) if part not in ("path", "query", "body", "header")]
        kind = error.get("type", "")
        expected = _EXPECTED.get(kind)
        if expected is None:
            message = str(error.get("msg", "a valid value"))
            expected = message.removeprefix("Input should be ").removeprefix("Value error, ")
        got = "nothing" if kind == "missing" else repr(error.get("input"))
        got = got if len(got) <= 40 else got[:39] + "…"
        sentences.append(f"{'.'.join(where) or 'request'}: expected {expected}, got {got}.")
    return " ".join(sentences)


async def _image_from_form(request: Request, session: WebSession) -> tuple[PreparedImage, Any]:
    """The picture a form names (an ``image`` file or an ``example`` index) and the form itself."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise UploadError(400, f"expected a multipart/form-data body with a field 'image' (a PNG or JPEG file) or "
                               f"'example' (an index), got Content-Type {kind or 'none'!r}.")
    try:
        form = await request.form(max_files=1, max_fields=16)
    except _TooLarge:
        raise
    except Exception as error:  # malformed multipart, or not a form at all
        raise UploadError(400, f"expected a multipart/form-data body with a field 'image' (a PNG or JPEG file) or "
                               f"'example' (an index), got an unreadable body ({type(error).__name__}).") from None
    upload, example = form.get("image"), form.get("example")
    if isinstance(upload, UploadFile):
        data = await upload.read()
        limits = session.limits
        return read_upload(data, session.image_shape, max_bytes=limits.max_upload_bytes,
                           max_pixels=limits.max_pixels), form
    if upload is not None:
        raise UploadError(400, "image: expected a file (a PNG or JPEG upload), got a text field.")
    if example is None:
        raise UploadError(400, "expected a field 'image' (a PNG or JPEG file) or 'example' (an index), got neither.")
    return session.example(_integer("example", example)), form


async def _labelled_from_form(request: Request, session: WebSession) -> tuple[Any, list[PreparedImage], list[PreparedImage]]:
    """The ``name`` of a label and the pictures of a form's ``with`` and ``without`` files, read and prepared."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    expected = ("a multipart/form-data body with a field 'name' (the label) and files 'with' (pictures with the "
                "label) and 'without' (pictures without it)")
    if kind != "multipart/form-data":
        raise UploadError(400, f"expected {expected}, got Content-Type {kind or 'none'!r}.")
    limits = session.limits
    most = 2 * limits.max_labelled
    try:
        form = await request.form(max_files=most, max_fields=8)
    except _TooLarge:
        raise
    except (MultiPartException, StarletteHTTPException) as error:  # Starlette turns the first into the second
        message = str(getattr(error, "detail", None) or error)
        if "Too many files" in message:
            raise UploadError(413, f"expected at most {limits.max_labelled} pictures on each side ({most} files in "
                                   "all), got more.") from None
        raise UploadError(400, f"expected {expected}, got an unreadable body ({message}).") from None
    except Exception as error:  # malformed multipart
        raise UploadError(400, f"expected {expected}, got an unreadable body ({type(error).__name__}).") from None
    sides: dict[str, list[PreparedImage]] = {}
    for side in ("with", "without"):
        pictures = []
        for i, upload in enumerate(form.getlist(side)):
            if not isinstance(upload, UploadFile):
                raise UploadError(400, f"{side}[{i}]: expected a file (a PNG or JPEG upload), got a text field.")
            try:
                pictures.append(read_upload(await upload.read(), session.image_shape,
                                            max_bytes=limits.max_upload_bytes, max_pixels=limits.max_pixels))
            except UploadError as error:
                raise UploadError(error.status, f"{side}[{i}] ({upload.filename or 'unnamed'}): {error}") from None
        sides[side] = pictures
    return form.get("name"), sides["with"], sides["without"]


def _integer(name: str, value: Any, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    try:
        return int(str(value).strip())
    except ValueError:
        raise UploadError(422, f"{name}: expected an integer, got {str(value)[:40]!r}.") from None


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):  # json.JSONDecodeError is a ValueError
        raise UploadError(400, "expected a JSON object as the request body, got something else.") from None
    except RecursionError:  # e.g. [[[[...]]]] 100,000 deep: Python's parser gives up
        raise UploadError(400, "expected a JSON object as the request body, got JSON nested too deeply to read "
                               "(the API's bodies are at most three levels deep).") from None
    if not isinstance(body, dict):
        raise UploadError(400, f"expected a JSON object as the request body, got a JSON {type(body).__name__}.")
    return body


class _Stream:
    """NDJSON lines of a refinement; gives its place in the queue back however the page stops reading."""

    def __init__(self, events: Iterator[dict[str, Any]], places: ExitStack) -> None:
        self._events, self._places, self._closed = events, places, False

    def __iter__(self) -> _Stream:
        return self

    def __next__(self) -> str:
        try:
            return json.dumps(next(self._events)) + "\n"
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._events.close()  # type: ignore[attr-defined]
            finally:
                self._places.close()

    def __del__(self) -> None:
        self.close()


def _single(grouped: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside ``grouped`` (through nested groups of one), or ``grouped`` itself when it holds several."""
    error: BaseException = grouped
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


class _RefineResponse(StreamingResponse):
    """A refinement's NDJSON stream that stops the refinement as soon as the client disconnects.

    The page's Stop button, a new picture or a closed tab drop the connection. Starlette notices
    that only at the next line it sends, which may be thousands of steps away while the models are
    held; this response also listens for the disconnect and sets ``stop`` at once, so the
    refinement ends at its next step and the models serve the next request.
    """

    def __init__(self, lines: _Stream, stop: threading.Event) -> None:
        super().__init__(lines, media_type="application/x-ndjson")
        self._stop = stop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watch() -> None:
            await self.listen_for_disconnect(receive)
            self._stop.set()

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(watch)
                try:
                    await super().__call__(scope, receive, send)
                except ClientDisconnect:  # the page went away: the normal end of a stopped refinement
                    self._stop.set()
                finally:
                    group.cancel_scope.cancel()
        except BaseExceptionGroup as grouped:
            # anyio 4 wraps what the body raised in an exception group, which the app's handlers
            # (matched by type) and the server's log would not recognise: raise the exception itself.
            raise _single(grouped) from None


_GAN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def create_app(session: WebSession, *, name: str | None = None,
               others: Mapping[str, WebSession] | None = None) -> FastAPI:
    """The page and the API for ``session`` (run it with uvicorn; :mod:`discinvert.web.server`).

    Args:
        session: the GAN served at ``/`` (the page) and ``/api/`` (its API).
        name: its name in the page's picker of GANs (default ``"this GAN"``).
        others: more GANs for the picker, by name: each one's page and API are served under ``/gan/NAME/``
            (``/gan/NAME/api/info``, ...). ``GET /api/gans`` (under every prefix) lists them all, the first one
            first. ``None``: the picker offers only ``session`` and the page hides it.

    Raises:
        ValueError: a name that is not letters, digits, ``.``, ``_`` and ``-`` (it is part of a URL), or a name
            given twice.
    """
    others = dict(others or {})
    first = name or "this GAN"
    for other in others:
        if not _GAN_NAME.match(other):
            raise ValueError(f"others: expected names of letters, digits, '.', '_' and '-' (a part of a URL), "
                             f"got {other!r}.")
    if first in others:
        raise ValueError(f"others: expected names other than the first GAN's {first!r}, got it again.")
    listing = [{"name": first, "description": session.description, "url": "/"}]
    listing += [{"name": other, "description": served.description, "url": f"/gan/{other}/"}
                for other, served in others.items()]
    app = _one_app(session, listing, 0)
    for index, (other, served) in enumerate(others.items(), 1):
        prefix = f"/gan/{other}"
        # the page's URLs are relative to it: /gan/NAME must become /gan/NAME/
        app.add_api_route(prefix, _redirect(prefix + "/"), methods=["GET"], include_in_schema=False)
        app.mount(prefix, _one_app(served, listing, index))
    return app


def _redirect(target: str) -> Callable[[], RedirectResponse]:
    def endpoint() -> RedirectResponse:
        return RedirectResponse(target)

    return endpoint


def _one_app(session: WebSession, listing: list[dict[str, str]], current: int) -> FastAPI:
    """One GAN's page and API; ``listing``: every GAN the picker offers, ``current``: this one's index."""
    # No /api/docs: FastAPI's Swagger page loads its scripts from a CDN and is blank offline.
    app = FastAPI(title="discinvert", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json",
                  description="Invert, refine and edit images with an inverter of a GAN: through its own "
                              "discriminator, or its generator alone (docs/web.md).")
    static = resources.files("discinvert.web") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    _add_error_handlers(app)
    _add_page_routes(app, session, static)
    _add_api_routes(app, session)

    @app.get("/api/gans")
    def gans() -> dict[str, Any]:
        """The GANs the page's picker offers: ``gans`` (``name``, ``description``, ``url`` of its page) and
        ``current``, the index of this one."""
        return {"gans": listing, "current": current}

    limit = session.limits.max_upload_bytes + _FORM_ROOM
    app.add_middleware(_BodyLimit, limit=limit)  # type: ignore[arg-type]
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every refusal and failure answers JSON ``{"error": message}`` with its status (:func:`_error`)."""

    @app.exception_handler(UploadError)
    async def _upload_error(_request: Request, error: UploadError) -> JSONResponse:
        return _error(error.status, str(error))

    @app.exception_handler(_TooLarge)
    async def _too_large(_request: Request, error: _TooLarge) -> JSONResponse:
        return _error(413, str(error))

    @app.exception_handler(Busy)
    async def _busy(_request: Request, error: Busy) -> JSONResponse:
        return _error(503, str(error), {"Retry-After": "1"})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = f"no such page: {request.url.path}" if error.status_code == 404 else str(error.detail)
        return _error(error.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, error: RequestValidationError) -> JSONResponse:
        return _error(422, _plain(error.errors()))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        # A bug, not a refusal: still JSON for the page, with the traceback in the server's log.
        logger.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return _error(500, f"internal error ({type(error).__name__}); the server's log has the details.")


def _add_page_routes(app: FastAPI, session: WebSession, static: Traversable) -> None:
    """The page, the facts it shows, and the example pictures."""

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse((static / "index.html").read_text(encoding="utf-8"))

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        """The GAN, the inverter, the example pictures, the edit directions and the limits."""
        return {**session.info(), "version": __version__}

    @app.get("/api/examples/{index}.png", response_class=Response)
    def example_png(index: int) -> Response:
        """Example picture ``index`` as a PNG."""
        return Response(png_bytes(session.example(index).pixels), media_type="image/png")


def _add_api_routes(app: FastAPI, session: WebSession) -> None:
    """The page's actions: reconstruct, refine (a stream), edit, learn a slider, interpolate, download a code."""

    @app.post("/api/reconstruct")
    async def reconstruct(request: Request) -> dict[str, Any]:
        """Multipart ``image`` (PNG/JPEG) or ``example``: ``code``, ``reconstruction`` (PNG data URL), ``psnr``, ``ssim``."""
        image, _ = await _image_from_form(request, session)
        return await run_in_threadpool(session.reconstruct, image)

    @app.post("/api/refine")
    async def refine(request: Request) -> StreamingResponse:
        """Multipart ``image`` or ``example``, ``steps``, ``every``: an NDJSON stream of progress, then the codes."""
        image, form = await _image_from_form(request, session)
        steps = _integer("steps", form.get("steps"), 50)
        every = _integer("every", form.get("every"), max(1, steps // 10))
        places, stop = ExitStack(), threading.Event()
        places.enter_context(session.place())
        try:
            events = session.refine(image, steps, every, stop)
            next_line = _Stream(events, places)
        except BaseException:
            places.close()
            raise
        return _RefineResponse(next_line, stop)

    @app.post("/api/edit")
    async def edit(request: Request) -> dict[str, Any]:
        """JSON ``{"code": [...], "amounts": {direction: amount}}``: the edited ``code`` and ``image``, ``typical``
        (the edited code's squared Mahalanobis ``norm``, the code's ``before``, the typical set's ``low`` and
        ``high``, ``inside``; null without a direction set) and ``warning`` (why the edit left the prior's
        typical set, or null)."""
        body = await _json_body(request)
        amounts = body.get("amounts", {})
        if not isinstance(amounts, dict):
            raise UploadError(422, f"amounts: expected an object of direction names to numbers, got {type(amounts).__name__}.")
        return await run_in_threadpool(session.edit, session.code(body.get("code")), amounts)

    @app.post("/api/directions")
    async def learn(request: Request) -> dict[str, Any]:
        """Multipart ``name`` (the label), ``with`` files (pictures with it) and ``without`` files (pictures
        without it), each side ``min_labelled`` to ``max_labelled`` pictures: a new slider learned from their codes
        (``learn_directions``): ``name``, ``holdout_balanced_accuracy`` and the counts, ``group`` (as in
        ``/api/info``'s ``direction_groups``), ``directions`` (every slider's name now), ``seconds``."""
        name, with_label, without = await _labelled_from_form(request, session)
        return await run_in_threadpool(session.learn, name, with_label, without)

    @app.post("/api/interpolate")
    async def interpolate(request: Request) -> dict[str, Any]:
        """JSON ``{"code_a": [...], "code_b": [...], "frames": n, "method": "linear"|"slerp"}``: ``images``."""
        body = await _json_body(request)
        frames = _integer("frames", body.get("frames"), 9)
        return await run_in_threadpool(session.interpolate, session.code(body.get("code_a"), "code_a"),
                                       session.code(body.get("code_b"), "code_b"), frames,
                                       body.get("method", "slerp"))

    @app.post("/api/code.npy", response_class=Response)
    async def code_npy(request: Request) -> Response:
        """JSON ``{"code": [...]}``: the code as a ``.npy`` file of shape ``latent_shape``, float32."""
        body = await _json_body(request)
        buffer = io.BytesIO()
        np.save(buffer, session.code(body.get("code")).reshape(session.inverter.latent_shape).numpy())
        return Response(buffer.getvalue(), media_type="application/octet-stream",
                        headers={"Content-Disposition": 'attachment; filename="code.npy"'})
