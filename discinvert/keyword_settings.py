"""Keyword arguments generated from a settings dataclass: each option's default, type and documentation once.

A public function with many options declares them as the fields of a dataclass (each field's
default, annotation and documentation: :func:`setting`) and takes them as ``**settings``;
:func:`keyword_settings` then shows them as its keyword-only arguments in its signature
(``help()``, ``inspect.signature``, IDEs that read it at run time) and, at a ``{settings}``
line of its docstring, with their documentation::

    @dataclass(frozen=True)
    class Options:
        lr: float = setting(0.05, "Adam step size.")

    @keyword_settings(Options)
    def run(images: torch.Tensor, *, steps: int = 50, **settings: Any) -> torch.Tensor:
        \"\"\"...

        Args:
            images: ...
            steps: ...
            {settings}
        \"\"\"
        options = Options(**settings)

So one place holds each default, shared by every function that offers the option, and the
function's own definition stays short (the settings count as one parameter). A keyword that
is neither a parameter nor a setting is a ``TypeError`` worded as Python words it (or, with
``strict=False``, left to the function, e.g. for a ``ValueError`` naming close matches).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
import textwrap
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["keyword_settings", "setting", "settings_doc"]

_F = TypeVar("_F", bound=Callable[..., Any])

DOC_WIDTH = 88
"""Docstring lines are wrapped to this width less their indentation (as FitConfig's settings are)."""


def setting(default: Any, doc: str) -> Any:
    """A dataclass field with its default and its documentation (``metadata["doc"]``), for :func:`keyword_settings`."""
    return dataclasses.field(default=default, metadata={"doc": doc})


def _field_doc(item: dataclasses.Field[Any]) -> str:
    if "doc" not in item.metadata:
        raise ValueError(f"{item.name}: expected a field documented by setting(default, doc); got one without "
                         "metadata['doc'] (pass describe= to read its documentation elsewhere).")
    return str(item.metadata["doc"])


def settings_doc(settings_class: type, indent: str = "    ",
                 describe: Callable[[dataclasses.Field[Any]], str] = _field_doc) -> str:
    """The ``Args:``-style documentation of every field of ``settings_class``, one wrapped entry each."""
    lines: list[str] = []
    for item in dataclasses.fields(settings_class):
        lines += textwrap.wrap(f"{item.name}: {describe(item)}", width=DOC_WIDTH - len(indent),
                               initial_indent=indent, subsequent_indent=indent + "    ")
    return "\n".join(lines)


def _public_signature(function: Callable[..., Any], settings_class: type, order: Sequence[str] | None,
                      annotated: bool) -> inspect.Signature:
    """``function``'s signature with its ``**settings`` replaced by the fields, keyword-only, in ``order`` if given."""
    signature = inspect.signature(function)
    own = list(signature.parameters.values())
    if not own or own[-1].kind is not inspect.Parameter.VAR_KEYWORD:
        raise ValueError(f"{function.__qualname__}: expected a function taking **settings, got {signature}.")
    fields = [
        inspect.Parameter(item.name, inspect.Parameter.KEYWORD_ONLY, default=item.default,
                          annotation=item.type if annotated else inspect.Parameter.empty)
        for item in dataclasses.fields(settings_class)
    ]
    clash = sorted({p.name for p in own} & {p.name for p in fields})
    if clash:
        raise ValueError(f"{function.__qualname__}: expected settings that are not its own parameters; "
                         f"{settings_class.__name__} repeats {', '.join(clash)}.")
    parameters = [*own[:-1], *fields]
    if order is not None:
        keyword = {p.name: p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
        if sorted(order) != sorted(keyword):
            raise ValueError(f"{function.__qualname__}: order: expected each keyword-only argument once, "
                             f"{', '.join(sorted(keyword))}; got {', '.join(order)}.")
        parameters = [p for p in parameters if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        parameters += [keyword[name] for name in order]
    return signature.replace(parameters=parameters)


def _expanded_doc(doc: str | None, settings_class: type, describe: Callable[[dataclasses.Field[Any]], str]) -> str:
    """``doc`` with its ``{settings}`` line replaced by every field's documentation, at that line's indentation."""
    found = re.search(r"^([ \t]*)\{settings\}[ \t]*$", doc or "", flags=re.MULTILINE)
    if found is None:
        raise ValueError("expected a docstring with a {settings} line where the settings are documented; got none.")
    entries = settings_doc(settings_class, found.group(1), describe)
    return doc[: found.start()] + entries + doc[found.end():]  # type: ignore[index]


def keyword_settings(settings_class: type, *, order: Sequence[str] | None = None, strict: bool = True,
                     annotated: bool = True,
                     describe: Callable[[dataclasses.Field[Any]], str] = _field_doc) -> Callable[[_F], _F]:
    """Show the fields of ``settings_class`` as the keyword-only arguments of a function taking ``**settings``.

    The decorated function's signature (``inspect.signature``, ``help()``) lists its own
    parameters, then the fields (each with its default and, with ``annotated``, its annotation)
    in place of ``**settings``; its docstring's ``{settings}`` line becomes the fields'
    documentation (:func:`settings_doc`). Calls still reach the function as they came: it
    receives the settings given, as ``**settings``, and fills in the rest from the dataclass
    (``settings_class(**settings)``).

    Args:
        settings_class: a dataclass; each field is one setting.
        order: every keyword-only argument of the generated signature, the function's own and the
            fields, in the order to show them (default: the function's own, then the fields).
        strict: a keyword that is neither a parameter nor a field is a ``TypeError`` (worded as
            Python's for an unexpected keyword), raised before the function runs; ``False`` leaves
            it to the function (which then sees it in ``**settings``).
        annotated: give the generated parameters the fields' annotations.
        describe: a field's documentation (default: ``metadata["doc"]``, as :func:`setting` stores it).

    Raises:
        ValueError: at decoration: a function without ``**settings`` or without a ``{settings}``
            docstring line, a field named like one of its parameters, an ``order`` that does not
            name each keyword-only argument once.
    """

    def decorate(function: _F) -> _F:
        signature = _public_signature(function, settings_class, order, annotated)
        doc = _expanded_doc(function.__doc__, settings_class, describe)
        if not strict:
            function.__signature__ = signature  # type: ignore[attr-defined]
            function.__doc__ = doc
            return function
        accepted = {p.name for p in signature.parameters.values()
                    if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}

        @functools.wraps(function)
        def checked(*args: Any, **kwargs: Any) -> Any:
            for name in kwargs:
                if name not in accepted:
                    raise TypeError(f"{function.__qualname__}() got an unexpected keyword argument {name!r}")
            return function(*args, **kwargs)

        checked.__signature__ = signature  # type: ignore[attr-defined]
        checked.__doc__ = doc
        return checked  # type: ignore[return-value]

    return decorate
