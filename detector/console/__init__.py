"""The analysts' web console (issue 7): server-rendered pages under ``/console`` on the API's
application, behind a login with the analyst client's id and secret (docs/console.md)."""

from detector.console.pages import add_routes

__all__ = ["add_routes"]
