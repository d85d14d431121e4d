"""Turning TARGET into what ``fulmen._core.serve`` runs.

TARGET takes one of these forms:

``module:callable``
    Import *module* and serve its attribute *callable* (a dotted path such
    as ``pkg.app:server.wsgi`` is allowed).
``module``
    Same as ``module:application``.
``module:factory()`` / ``module:create_app("prod", debug=False)``
    Call a factory and serve what it returns. The arguments must be Python
    literals; they are read with ``ast.literal_eval``, never evaluated.
``path/to/script.py``
    Script mode (Fapws4 compatible): execute the file and serve its
    ``PATHS``, a list of ``(prefix, handler)`` pairs. A TARGET is a script
    when it ends with ``.py`` or contains a ``/``.

Errors come in two kinds: ``TargetError`` (a ``ValueError``) when TARGET or
``PATHS`` is malformed -- a usage error, exit status 2 -- and ``AppLoadError``
when importing or building the application fails -- exit status 4, with the
traceback when there is one.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "SCRIPT_MODULE",
    "AppLoadError",
    "Loaded",
    "ModuleTarget",
    "ScriptTarget",
    "TargetError",
    "load",
    "load_object",
    "normalise_paths",
    "parse_target",
]

#: The name a script is executed under. Not "__main__", so that a script's
#: ``if __name__ == "__main__":`` block (which often starts another server)
#: does not run.
SCRIPT_MODULE: Final = "__fulmen_script__"

#: The attribute served when TARGET names only a module (as gunicorn does).
DEFAULT_CALLABLE: Final = "application"


class TargetError(ValueError):
    """TARGET or a script's PATHS is malformed; the message is one line."""


class AppLoadError(Exception):
    """The application could not be loaded.

    ``target`` is TARGET as the user wrote it, ``reason`` one line, and
    ``details`` the formatted traceback when the failure came from the
    application's own code (None for e.g. a missing module or attribute).
    """

    def __init__(self, target: str, reason: str, details: str | None = None) -> None:
        super().__init__(f"failed to load application {target!r}: {reason}")
        self.target = target
        self.reason = reason
        self.details = details


@dataclass(frozen=True)
class ModuleTarget:
    """``module:expression``, parsed but not imported yet."""

    text: str
    module: str
    attributes: tuple[str, ...]  # ("server", "wsgi") for "module:server.wsgi"
    call: bool = False  # True for "module:factory(...)"
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScriptTarget:
    """A script path, checked to exist; ``path`` is absolute."""

    text: str
    path: str


#: A ``(prefix, handler)`` route, as passed to ``_core.serve``.
Route = tuple[str, Callable[..., Any]]


@dataclass(frozen=True)
class Loaded:
    """What to serve: a WSGI callable, or the routes of a script."""

    label: str  # TARGET as the user wrote it, for messages
    target: Callable[..., Any] | list[Route]
    #: Script-mode folders, as ``PREFIX=DIR`` mounts for the core (``static``).
    static: list[str] = field(default_factory=list)

    @property
    def script_mode(self) -> bool:
        return isinstance(self.target, list)


# --------------------------------------------------------------------------
# Parsing TARGET (no import happens here)
# --------------------------------------------------------------------------


def _is_script(text: str) -> bool:
    return text.endswith(".py") or "/" in text or os.sep in text


def parse_target(text: str) -> ModuleTarget | ScriptTarget:
    """Parse TARGET; raise ``TargetError`` if it cannot name an application.

    A script path is made absolute against the current directory, so call
    this before applying --chdir: paths on the command line are relative to
    where fulmen was started.
    """
    if not text.strip():
        raise TargetError("TARGET: empty application name")
    if _is_script(text):
        if not text.endswith(".py"):
            raise TargetError(
                f"TARGET: {text!r} is not a .py script (use MODULE:CALLABLE for an importable module)"
            )
        if os.path.isdir(text):
            raise TargetError(f"TARGET: {text!r} is a directory, not a .py script")
        if not os.path.isfile(text):
            raise TargetError(f"TARGET: no such file {text!r}")
        return ScriptTarget(text=text, path=os.path.abspath(text))

    module, _, expression = text.partition(":")
    if not all(part.isidentifier() for part in module.split(".")):
        raise TargetError(f"TARGET: {module!r} is not a valid module name")
    return _parse_expression(text, module, expression.strip() or DEFAULT_CALLABLE)


def _dotted_name(node: ast.expr) -> tuple[str, ...] | None:
    """``a.b.c`` -> ("a", "b", "c"); None for anything that is not a dotted name."""
    if isinstance(node, ast.Name):
        return (node.id,)
    if isinstance(node, ast.Attribute):
        head = _dotted_name(node.value)
        return None if head is None else (*head, node.attr)
    return None


def _parse_expression(text: str, module: str, expression: str) -> ModuleTarget:
    """Parse ``name``, ``a.b`` or ``factory(literal, key=literal)`` safely."""
    bad = TargetError(
        f"TARGET: {expression!r} is not a callable name or a factory call with literal "
        f"arguments (in {text!r})"
    )
    try:
        node = ast.parse(expression, mode="eval").body
    except SyntaxError:
        raise bad from None

    if not isinstance(node, ast.Call):
        attributes = _dotted_name(node)
        if attributes is None:
            raise bad
        return ModuleTarget(text=text, module=module, attributes=attributes)

    attributes = _dotted_name(node.func)
    if attributes is None or any(isinstance(arg, ast.Starred) for arg in node.args):
        raise bad
    if any(keyword.arg is None for keyword in node.keywords):  # **kwargs
        raise bad
    try:
        args = tuple(ast.literal_eval(arg) for arg in node.args)
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise TargetError(
            f"TARGET: the arguments of {expression!r} must be Python literals (in {text!r})"
        ) from None
    return ModuleTarget(text=text, module=module, attributes=attributes, call=True, args=args, kwargs=kwargs)


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def _is_machinery(filename: str) -> bool:
    return filename == __file__ or filename == importlib.__file__ or filename.startswith("<frozen importlib")


def _traceback(error: BaseException) -> str:
    """The traceback of *error*, starting at the application's own code.

    The frames of this module and of importlib that lead to the application
    are dropped: they are the same for every failure and bury the cause. A
    SyntaxError may be left without frames; it shows its file and line itself.
    """
    tb = error.__traceback__
    while tb is not None and _is_machinery(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    if tb is None and not isinstance(error, SyntaxError):
        tb = error.__traceback__  # nothing of the application's: show it all
    return "".join(traceback.format_exception(type(error), error, tb))


def _reason(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"it called sys.exit({error.code!r})"
    return f"{type(error).__name__}: {error}"


def load(target: ModuleTarget | ScriptTarget) -> Loaded:
    """Import or execute *target* and return what to serve.

    Raises ``AppLoadError`` when the application's code fails or does not
    provide a callable, ``TargetError`` when a script's PATHS is malformed.
    """
    if isinstance(target, ScriptTarget):
        return _load_script(target)
    return Loaded(label=target.text, target=_load_module(target))


def _load_module(target: ModuleTarget) -> Callable[..., Any]:
    label = target.text
    try:
        module = importlib.import_module(target.module)
    except ModuleNotFoundError as error:
        # The module itself (or its package) is missing: a traceback through
        # importlib would only add noise. A missing import *inside* the
        # application is the application's error and keeps its traceback.
        missing = error.name or ""
        if target.module == missing or target.module.startswith(missing + "."):
            raise AppLoadError(label, f"no module named {missing!r}") from None
        raise AppLoadError(label, _reason(error), _traceback(error)) from error
    except (Exception, SystemExit) as error:  # anything the module raises, sys.exit() included
        raise AppLoadError(label, _reason(error), _traceback(error)) from error

    obj: Any = module
    for depth, attribute in enumerate(target.attributes):
        try:
            obj = getattr(obj, attribute)
        except AttributeError:
            owner = ".".join((target.module, *target.attributes[:depth]))
            reason = f"{owner!r} has no attribute {attribute!r}"
            if depth == 0 and callable(getattr(module, "app", None)):
                reason += f" (did you mean '{target.module}:app'?)"
            raise AppLoadError(label, reason) from None
        except Exception as error:  # a module-level __getattr__ may raise anything
            raise AppLoadError(label, _reason(error), _traceback(error)) from error

    name = ".".join(target.attributes)
    if target.call:
        if not callable(obj):
            raise AppLoadError(label, f"{name!r} is not callable (it is {type(obj).__name__})")
        try:
            obj = obj(*target.args, **target.kwargs)
        except (Exception, SystemExit) as error:  # the factory's own failure
            raise AppLoadError(label, f"the factory raised {_reason(error)}", _traceback(error)) from error
        if not callable(obj):
            raise AppLoadError(
                label, f"the factory {name!r} returned {type(obj).__name__}, not a WSGI callable"
            )
    elif not callable(obj):
        raise AppLoadError(label, f"{name!r} is not callable (it is {type(obj).__name__})")
    application: Callable[..., Any] = obj
    return application


def install_fapws4_aliases() -> None:
    """Make ``import fapws4.base`` find ``fulmen.base``.

    Fapws4 scripts start with ``from fapws4.base import Start_response,
    Environ``. Rather than installing a top-level ``fapws4`` package, script
    mode registers two entries in ``sys.modules``: ``fapws4``, a small package
    object owned by fulmen, and ``fapws4.base``, which *is* ``fulmen.base``.
    A ``fapws4`` already imported (the real one) is left alone.
    """
    from . import base

    if "fapws4" not in sys.modules:
        package = types.ModuleType("fapws4", "Fapws4 compatibility names, provided by fulmen.")
        package.__path__ = []  # a package, so "fapws4.base" is a valid submodule name
        package.base = base  # type: ignore[attr-defined]
        sys.modules["fapws4"] = package
        sys.modules.setdefault("fapws4.base", base)


def _load_script(target: ScriptTarget) -> Loaded:
    install_fapws4_aliases()
    # Like "python script.py": the script's directory comes first on sys.path,
    # so it can import the modules next to it.
    directory = os.path.dirname(target.path)
    if sys.path[:1] != [directory]:
        sys.path.insert(0, directory)

    spec = importlib.util.spec_from_file_location(SCRIPT_MODULE, target.path)
    assert spec is not None and spec.loader is not None  # a .py path always has a loader
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as an import would, so that pickle,
    # dataclasses and typing can find the module by name.
    sys.modules[SCRIPT_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # anything the script raises, sys.exit() included
        del sys.modules[SCRIPT_MODULE]
        raise AppLoadError(target.text, _reason(error), _traceback(error)) from error

    if hasattr(module, "PATHS"):
        static: list[str] = []
        routes = normalise_paths(module.PATHS, target.text, static, directory)
        return Loaded(label=target.text, target=routes, static=static)
    # A script without PATHS that defines the standard callable is a WSGI
    # script (uWSGI's --wsgi-file habit): serve it as one application.
    application = getattr(module, DEFAULT_CALLABLE, None)
    if application is None:
        raise TargetError(
            f"{target.text}: the script defines neither PATHS (expected PATHS = [('/', handler), ...]) "
            f"nor a WSGI callable named {DEFAULT_CALLABLE!r}"
        )
    if not callable(application):
        raise AppLoadError(
            target.text, f"{DEFAULT_CALLABLE!r} is not callable (got {type(application).__name__})"
        )
    return Loaded(label=target.text, target=application)


# Characters a prefix cannot contain: they never reach the path the core
# matches ("?" and "#" end it) or cannot be sent unencoded.
_FORBIDDEN_IN_PREFIX: Final = frozenset("?# \t")


def _static_dir(handler: object, base: str) -> str | None:
    """The folder a PATHS entry serves, or None when it is a handler."""
    from .base import Static

    if isinstance(handler, Static):
        return os.path.abspath(os.path.join(base, handler.directory))
    if isinstance(handler, str) and os.path.isdir(os.path.join(base, handler)):
        return os.path.abspath(os.path.join(base, handler))
    return None  # A str naming no folder is reported as a handler that is not callable.


def _not_found(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The handler of a script whose PATHS are all folders: the rest is 404."""
    start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"404 Not Found\n"]


def normalise_paths(
    paths: object, where: str, static: list[str] | None = None, base: str | None = None
) -> list[Route]:
    """Check a script's PATHS and return it as a list of ``(prefix, handler)``.

    Each prefix is a str starting with "/". One trailing "/" is stripped from
    prefixes other than "/", so "/api/" and "/api" both mean the /api subtree
    ("/api" and "/api/..." but not "/apix"). Prefixes must be distinct after
    that. The order is kept: the core picks the longest matching prefix, sets
    SCRIPT_NAME to it and PATH_INFO to the rest of the path.

    An entry whose handler is a ``fulmen.base.Static`` or a str names a
    folder (relative to *base*, the script's directory, or the current one):
    it is appended to *static* as ``PREFIX=DIR`` for the core to serve
    instead of becoming a route. A PATHS of folders only gets a "/" route
    that answers 404.

    Raises ``TargetError`` naming the first bad entry, prefixed by *where*.
    """
    if isinstance(paths, (str, bytes)) or not isinstance(paths, (list, tuple)):
        raise TargetError(
            f"{where}: PATHS must be a list of (prefix, handler) pairs, got {type(paths).__name__}"
        )
    if not paths:
        raise TargetError(f"{where}: PATHS is empty")

    routes: list[Route] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(paths):
        at = f"{where}: PATHS[{index}]"
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            shown = repr(entry) if len(repr(entry)) <= 60 else repr(entry)[:57] + "..."
            raise TargetError(f"{at}: expected a (prefix, handler) pair, got {shown}")
        prefix, handler = entry
        if not isinstance(prefix, str):
            raise TargetError(f"{at}: the prefix must be a str, got {type(prefix).__name__}")
        if not prefix.startswith("/"):
            raise TargetError(f"{at}: the prefix {prefix!r} must start with '/'")
        if any(char in _FORBIDDEN_IN_PREFIX or not char.isprintable() for char in prefix):
            raise TargetError(
                f"{at}: the prefix {prefix!r} contains a space, '?', '#' or a control character"
            )
        if "//" in prefix:
            raise TargetError(f"{at}: the prefix {prefix!r} contains an empty segment '//'")
        folder = _static_dir(handler, base or os.getcwd())
        if folder is not None and not os.path.isdir(folder):
            raise TargetError(f"{at}: the folder for {prefix!r} does not exist: {folder!r}")
        if folder is None and not callable(handler):
            raise TargetError(
                f"{at}: the handler for {prefix!r} is not callable (it is {type(handler).__name__})"
            )
        if prefix != "/" and prefix.endswith("/"):
            prefix = prefix[:-1]
        if prefix in seen:
            raise TargetError(f"{at}: the prefix {prefix!r} is already used by PATHS[{seen[prefix]}]")
        seen[prefix] = index
        if folder is not None:
            if static is None:
                raise TargetError(f"{at}: folders are only served from a script's PATHS or fulmen.run()")
            static.append(f"{prefix}={folder}")
        else:
            routes.append((prefix, handler))
    if not routes:
        routes.append(("/", _not_found))
    return routes


def load_object(app: object) -> Loaded:
    """What ``fulmen.run`` serves: a WSGI callable, a PATHS list, or a TARGET str."""
    if isinstance(app, str):
        return load(parse_target(app))
    if isinstance(app, (list, tuple)):
        static: list[str] = []
        return Loaded(label="PATHS", target=normalise_paths(app, "run()", static), static=static)
    if callable(app):
        label = getattr(app, "__qualname__", type(app).__name__)
        return Loaded(label=label, target=app)
    raise TargetError(
        f"app: expected a WSGI callable, a PATHS list or a TARGET str, got {type(app).__name__}"
    )
