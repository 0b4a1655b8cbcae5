"""The ``zoo`` command line: global options, then the commands every plugin registers through
``register_commands`` -- zoo's own too (``zoo.cli.components``, ``zoo.cli.recipes``,
``zoo.cli.models``). This module is the last line of defence: a problem the user can fix is one line
and exit status 2, an operating-system error (disk full, permissions, a name too long) one line and
status 1, and any other exception one line naming the command and where to report it (status 1;
``--debug`` or ZOO_DEBUG=1 shows the traceback)."""

from __future__ import annotations

import argparse
import errno
import math
import os
import platform
import re
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

from zoo import __version__
from zoo.deprecation import ZooDeprecationWarning
from zoo.errors import ZooError
from zoo.launch import launched_by_torchrun, world
from zoo.names import DISTRIBUTION
from zoo.registry import BUILTIN, Command, PluginWarning, Registry
from zoo.text import clip, did_you_mean

EXIT_USAGE = 2
EXIT_FAILED = 1
GLOBAL_HELP = """global options, accepted anywhere on the line:
  -p no:NAME        switch plugin NAME off for this command (repeatable; also ZOO_PLUGINS_DISABLE=NAME,...)
  --strict-plugins  fail on the first broken plugin or name clash (also ZOO_PLUGINS_STRICT=1)
  --debug           show the traceback of an unexpected error (also ZOO_DEBUG=1)"""


class UsageError(Exception):
    """A global option is malformed."""


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line, like every other error, and a did-you-mean for a
    misspelt command."""

    def error(self, message: str):
        wrong = re.fullmatch(r"argument COMMAND: invalid choice: '(.*?)' \(choose from (.*)\)", message)
        if wrong:
            commands = re.findall(r"'([^']*)'", wrong[2])
            message = f"unknown command '{wrong[1]}'.{did_you_mean(wrong[1], commands)}"
        self.exit(EXIT_USAGE, f"zoo: error: {message} (see '{self.prog} --help')\n")


def split_globals(argv: Sequence[str]) -> tuple[list[str], bool, bool, list[str]]:
    """The plugins ``-p no:NAME`` switches off, ``--strict-plugins``, ``--debug``, and the rest of
    the line; these options may stand anywhere before ``--``, as pytest's ``-p`` does."""
    off, strict, debug, rest = [], False, False, []
    tokens = iter(argv)
    for token in tokens:
        if token == "--":
            rest += [token, *tokens]
            break
        if token in ("--strict-plugins", "--debug"):
            strict, debug = strict or token == "--strict-plugins", debug or token == "--debug"
        elif token == "-p" or token.startswith("-p"):
            value = next(tokens, "") if token == "-p" else token[2:].removeprefix("=")
            if not value.startswith("no:") or not value[3:]:
                raise UsageError("-p takes no:NAME, the name of a plugin to switch off (see zoo plugins)")
            off.append(value[3:])
        else:
            rest.append(token)
    return off, strict, debug, rest


def positive(text: str) -> int:
    """An argparse type: a positive whole number."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def path(text: str) -> Path:
    """An argparse type: a file or folder path, not empty and of a length a file system takes."""
    if not text.strip() or "\0" in text:
        raise argparse.ArgumentTypeError(f"expected a path, got {text[:40]!r}")
    if len(text) > 4096 or any(len(part.encode()) > 255 for part in Path(text).parts):
        raise argparse.ArgumentTypeError(f"the path {text[:40]!r}... has a name longer than 255 bytes, or is longer "
                                         "than 4,096 characters")
    return Path(text)


def number(low: float, high: float, *, above: bool = False):
    """An argparse type: a finite number from ``low`` (or above it, with ``above``) to ``high``."""
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < low or (above and value == low) or value > high:
            raise argparse.ArgumentTypeError(f"expected a number {'above' if above else 'from'} {low:g} to {high:g}, "
                                             f"got {text[:40]!r}")
        return value

    return convert


def parser(registry: Registry) -> argparse.ArgumentParser:
    """The command line of the commands ``registry``'s plugins register (zoo's own first)."""
    top = Parser(prog="zoo", epilog=GLOBAL_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
                                  description="A plugin-based PyTorch model zoo: list components, build recipes, "
                                              "load, predict, export and share models.")
    top.add_argument("--version", action=_Version, nargs=0, registry=registry,
                     help="zoo's version, torch's, python's and every plugin's")
    sub = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    owners: dict[str, Command] = {}
    for command in sorted(registry.commands(), key=lambda c: c.plugin.dist != BUILTIN):
        if command.name in owners:
            owner = owners[command.name].plugin
            holder = "zoo's own command" if owner.dist == BUILTIN else f"plugin {owner}"
            warnings.warn(f"plugin {command.plugin}: command '{command.name}' is refused: {holder} has that name",
                          PluginWarning)
            continue
        builtin = command.plugin.dist == BUILTIN
        helptext = command.help if builtin else f"{command.help} (plugin {command.plugin.name})"
        description = command.description or (command.help[:1].upper() + command.help[1:] + "." if command.help else "")
        p = sub.add_parser(command.name, help=helptext, epilog=GLOBAL_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           description=description + ("" if builtin else f" From plugin {command.plugin}."))
        try:
            if command.arguments is not None:
                command.arguments(p)
        except Exception as exc:
            if builtin:
                raise
            warnings.warn(f"plugin {command.plugin}: command '{command.name}' is broken: its arguments raised "
                          f"{type(exc).__name__}: {exc}", PluginWarning)
            p.set_defaults(handler=lambda args, c=command, e=exc: _broken(c, e))
            continue
        owners[command.name] = command
        p.set_defaults(handler=lambda args, c=command: _run(c, args))
    return top


class _Version(argparse.Action):
    """``--version``: the versions are looked up when asked for, not on every command line."""

    def __init__(self, *args, registry: Registry, **kwargs):
        super().__init__(*args, **kwargs)
        self.registry = registry

    def __call__(self, parser, namespace, values, option_string=None):
        print(versions(self.registry))
        parser.exit()


def versions(registry: Registry) -> str:
    """What ``zoo --version`` prints: zoo, torch and python, then the plugins by distribution."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "not installed"
    by_dist: dict[str, list[str]] = {}
    for plugin in registry.plugins:
        if plugin.status == "loaded":
            by_dist.setdefault(f"{plugin.dist} {plugin.version}", []).append(plugin.name)
    plugins = "; ".join(f"{', '.join(names)} ({dist})" for dist, names in by_dist.items())
    return (f"zoo {__version__} ({DISTRIBUTION}), torch {torch_version}, python {platform.python_version()}\n"
            f"plugins: {plugins}")


def _run(command: Command, args: argparse.Namespace) -> int:
    if command.plugin.dist == BUILTIN:
        return int(command.run(args) or 0)
    try:
        return int(command.run(args) or 0)
    except (ZooError, KeyboardInterrupt, OSError):
        raise
    except Exception as exc:
        raise ZooError(f"command '{command.name}' of plugin {command.plugin} raised {type(exc).__name__}: {exc}") from exc


def _broken(command: Command, error: Exception) -> int:
    raise ZooError(f"command '{command.name}' of plugin {command.plugin} is broken: {type(error).__name__}: {error}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``zoo`` command line; the exit status."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", PluginWarning)
        warnings.simplefilter("always", ZooDeprecationWarning)
        warnings.showwarning = _show_warning
        return _main(list(sys.argv[1:] if argv is None else argv))


def _main(argv: list[str]) -> int:
    try:
        off, strict, debug, rest = split_globals(argv)
    except UsageError as exc:
        print(f"zoo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    debug = debug or os.environ.get("ZOO_DEBUG", "").lower() in ("1", "true", "yes")
    command = next((token for token in rest if not token.startswith("-")), "zoo")
    torchrun = False
    try:
        torchrun = launched_by_torchrun()
        registry = Registry.from_environment(disabled=off, strict=strict)
        top = parser(registry)
        if "_ARGCOMPLETE" in os.environ:  # a shell asks for completions: eval "$(register-python-argcomplete zoo)"
            import argcomplete

            argcomplete.autocomplete(top)
        args = top.parse_args(rest)
        args.registry, args.disabled, args.strict = registry, off, strict
        code = args.handler(args)
        sys.stdout.flush()
    except ZooError as exc:
        for error in getattr(exc, "errors", [exc]):  # a recipe's independent errors, one line each
            print(f"zoo: error: {error}", file=sys.stderr)
        code = EXIT_USAGE
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:  # the reader left (zoo list | head -1): stop quietly, as other tools do
        _silence_stdout()
        code = 141
    except OSError as exc:  # the disk is full, a permission is missing, a name is too long ...
        _silence_stdout()
        if debug:
            raise
        where = f": {clip(exc.filename)}" if exc.filename else ""
        if exc.errno in (errno.ENAMETOOLONG, errno.EINVAL):  # what was typed, not the machine: bad input
            print(f"zoo {command}: error: {exc.strerror or exc}{where}: give a shorter or valid path", file=sys.stderr)
            code = EXIT_USAGE
        else:
            print(f"zoo {command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
            code = EXIT_FAILED
    except Exception as exc:
        if debug:
            raise
        if _lost_peer(exc):
            print(f"zoo {command}: error: rank {os.environ.get('RANK')} lost the job's other processes "
                  f"({_first_line(exc)[:160]}); the failure is theirs, reported above or by torchrun", file=sys.stderr)
        else:
            print(f"zoo {command}: internal error: {type(exc).__name__}: {_first_line(exc)} (at {_where(exc)}). This "
                  "is a bug: please report it to zoo's developers (or the plugin's, if that file is a plugin's) with "
                  "the output of the same command with --debug", file=sys.stderr)
        code = EXIT_FAILED
    if torchrun:
        # A torchrun worker: gloo's threads can abort the interpreter's finalization (SIGABRT, seen
        # intermittently; pytorch PR #179291), which torchrun reports as a failed run. Everything is
        # written and closed by now, so leave without finalizing.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _lost_peer(exc: BaseException) -> bool:
    """Whether a torchrun worker failed because another process of its job went away (a collective broke)."""
    if world() <= 1:
        return False
    dist = sys.modules.get("torch.distributed")
    return bool(dist and isinstance(exc, dist.DistError)) or isinstance(exc, RuntimeError) and any(
        word in str(exc) for word in ("gloo", "Gloo", "NCCL", "Connection reset", "Connection closed"))


def _first_line(exc: BaseException) -> str:
    return next((line for line in str(exc).splitlines() if line.strip()), "")[:300]


def _where(exc: BaseException) -> str:
    """The file and line that raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "unknown"


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"zoo: warning: {message}", file=sys.stderr)
