"""The errors of the Toxiproxy control facade (:mod:`chaos.toxiproxy.control`): every error a
caller can catch, each carrying the server's exact message.

::

    ToxiproxyError                 .status .message .method .path .url .body
    ├── ToxiproxyUnavailable       status 0: no connection, connection dropped, no answer in time
    ├── BadRequest                 400: bad body, missing field, invalid stream or toxic type
    ├── NotFound                   404
    │   ├── ProxyNotFound          404 "proxy not found"
    │   └── ToxicNotFound          404 "toxic not found"
    └── AlreadyExists              409: "proxy already exists", "toxic already exists"

Any other status (500 for a bind clash, 403, 405, 503) is a plain :class:`ToxiproxyError`.
Errors pickle with every field, so they cross process boundaries whole.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "AlreadyExists",
    "BadRequest",
    "NotFound",
    "ProxyNotFound",
    "ToxicNotFound",
    "ToxiproxyError",
    "ToxiproxyUnavailable",
    "error_from_reply",
]


class ToxiproxyError(Exception):
    """The server refused a request, or could not be reached.

    ``status`` is the HTTP status (0 when no reply came), ``message`` the server's own message
    (the ``error`` field of its JSON error body, or the body text when it is not JSON),
    ``method`` and ``path`` the request, ``url`` the server's base URL, and ``body`` the whole
    parsed reply (e.g. the ``proxies`` handled before a ``/populate`` failure), or ``None``.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        method: str,
        path: str,
        url: str,
        body: object = None,
    ) -> None:
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        self.url = url
        self.body = body
        super().__init__(self._describe())

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with every field: errors may cross process boundaries."""
        fields = {"method": self.method, "path": self.path, "url": self.url, "body": self.body}
        return (_rebuild_error, (type(self), self.status, self.message, fields))

    def _describe(self) -> str:
        return f"{self.method} {self.url}{self.path} -> HTTP {self.status}: {self.message}"


class ToxiproxyUnavailable(ToxiproxyError):
    """No reply: the server refused the connection, dropped it, or did not answer in time.

    ``status`` is 0; the message names the server's URL and what went wrong.
    """

    def _describe(self) -> str:
        return f"Toxiproxy at {self.url} is unavailable ({self.method} {self.path}): {self.message}"


class BadRequest(ToxiproxyError):
    """HTTP 400: a malformed body, a missing field, an invalid stream or toxic type."""


class NotFound(ToxiproxyError):
    """HTTP 404: the proxy, the toxic or the path does not exist."""


class ProxyNotFound(NotFound):
    """HTTP 404 ``proxy not found``."""


class ToxicNotFound(NotFound):
    """HTTP 404 ``toxic not found``."""


class AlreadyExists(ToxiproxyError):
    """HTTP 409: ``proxy already exists`` or ``toxic already exists``."""


def error_from_reply(status: int, text: str, *, method: str, path: str, url: str) -> ToxiproxyError:
    """The typed error for an error reply; the JSON body is parsed whatever its content type."""
    body: object = text
    message = text.strip() or f"HTTP {status} with an empty body"
    try:
        body = json.loads(text)
    except ValueError:
        pass
    else:
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            message = body["error"]
    kind: type[ToxiproxyError] = ToxiproxyError
    if status == 400:
        kind = BadRequest
    elif status == 404:
        kind = {"proxy not found": ProxyNotFound, "toxic not found": ToxicNotFound}.get(
            message, NotFound
        )
    elif status == 409:
        kind = AlreadyExists
    return kind(status, message, method=method, path=path, url=url, body=body)


def _rebuild_error(
    kind: type[ToxiproxyError], status: int, message: str, fields: dict[str, Any]
) -> ToxiproxyError:
    return kind(status, message, **fields)
