"""The CLI's command group: global options on either side of the command, literal usage errors.

Usage::

    app = typer.Typer(cls=CommandGroup)

    @app.callback()
    def configure(ctx: typer.Context, url: str | None = None) -> None:
        ctx.obj = Settings(url=url, ...)       # the group's options fill ctx.obj

Then ``--url U list`` and ``list --url U`` mean the same, and ``list --help`` shows ``--url``.
Every command gets a copy of each group option (same type, so the same validation: group
options validate through their type or ``parser``, never a callback); given after the command,
the copy sets the attribute of the same name on ``ctx.obj``, which the group's callback has made
by then.

Usage errors quote what the user typed (an unknown option, a missing file): their message is
made ``visible`` before Typer prints it, so control characters in it are shown, not sent.
"""

from __future__ import annotations

import copy
from typing import Any

from typer.core import TyperGroup, TyperOption

from .literal import visible

__all__ = ["GLOBAL_PANEL", "CommandGroup"]

GLOBAL_PANEL = "Global options (before or after the command)"


def _set_on_settings(ctx: Any, param: Any, value: Any) -> Any:
    """Set a group option given after the command on the settings the group's callback made."""
    if ctx.get_parameter_source(param.name).name == "COMMANDLINE":
        setattr(ctx.obj, param.name, value)
    return value


def _copy_for_command(option: TyperOption) -> TyperOption:
    duplicate = copy.copy(option)
    duplicate.expose_value = False
    duplicate.callback = _set_on_settings
    return duplicate


def _shown_literally(error: Exception) -> None:
    """Escape control characters in a Click usage error's message (it quotes user input)."""
    message = getattr(error, "message", None)
    if isinstance(message, str) and hasattr(error, "format_message"):
        error.message = visible(message)  # type: ignore[attr-defined]


class CommandGroup(TyperGroup):
    """A Typer group whose options every command accepts too, with literal usage errors."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        shared = [p for p in self.params if isinstance(p, TyperOption)]
        for option in shared:
            option.rich_help_panel = GLOBAL_PANEL
        for command in self.commands.values():
            taken = {name for p in command.params for name in (p.name, *p.opts)}
            command.params.extend(
                _copy_for_command(option)
                for option in shared
                if not taken & {option.name, *option.opts}
            )

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        """Parse the group's own arguments; a usage error's message is made visible."""
        try:
            return super().make_context(*args, **kwargs)
        except Exception as error:
            _shown_literally(error)
            raise

    def invoke(self, ctx: Any) -> Any:
        """Run the command (parsing its arguments); a usage error's message is made visible."""
        try:
            return super().invoke(ctx)
        except Exception as error:
            _shown_literally(error)
            raise
