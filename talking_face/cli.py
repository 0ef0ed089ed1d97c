"""``talking-face``: one command, every tool, and the rules for what a user sees.

Each tool is a plain function whose signature and docstring are its flags and ``--help`` (jsonargparse),
so the CLI never drifts from the Python API; fit/validate/test/predict go through LightningCLI. Nothing
heavy is imported before a tool runs, so ``talking-face --help`` and ``talking-face TOOL --help`` are quick.

A problem with a flag is one line and exit code 2, a problem found in the inputs while working one line and
exit code 1 (``talking_face.errors``); ``--debug`` or ``TALKING_FACE_DEBUG=1`` shows their tracebacks. Any
other exception is a bug and shows its traceback. SIGINT and SIGTERM unwind the run like an error, so
every atomic write and temporary folder cleans up after itself, and exit 130 and 143.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from talking_face.errors import InputError, InputWarning, UsageError

__all__ = ["TOOLS", "cli_main", "main"]

DEBUG_VARIABLE = "TALKING_FACE_DEBUG"
LIGHTNING = "LightningCLI"


@dataclass(frozen=True)
class Tool:
    group: str
    target: str  # "module:function", imported when the tool runs; LIGHTNING for LightningCLI's subcommands
    summary: str


TOOLS: dict[str, Tool] = {
    "generate": Tool("make a video", "talking_face.generation.generate:generate",
                     "a face photo or clip + speech and/or text -> a lip-synced mp4"),
    "demo": Tool("make a video", "talking_face.generation.demo:demo", "the same in a local web app (Gradio)"),
    "synth": Tool("data", "talking_face.datamodules.synthetic.corpus:synthesize_corpus",
                  "write the built-in corpus (TTS voices + animated real photos, GRID layout)"),
    "preprocess": Tool("data", "talking_face.datamodules.preprocess:preprocess_corpus",
                       "a corpus (GRID, a folder of videos, the built-in one) -> the training cache"),
    "inspect": Tool("data", "talking_face.datamodules.inspect:inspect_cache",
                    "print and plot what a cache holds"),
    "fit": Tool("train", LIGHTNING, "train a stage: -c landmarks.yaml or -c face2vid.yaml (LightningCLI)"),
    "validate": Tool("train", LIGHTNING, "score a checkpoint on the validation split"),
    "test": Tool("train", LIGHTNING, "score a checkpoint on the held-out splits"),
    "predict": Tool("train", LIGHTNING, "run a checkpoint over the prediction split"),
    "finetune": Tool("train", "talking_face.generation.finetune:finetune",
                     "personalise Face2Vid to a new face from a photo or a clip"),
    "export": Tool("train", "talking_face.generation.export:export",
                   "a training run -> a slim checkpoint with its card"),
    "evaluate": Tool("measure", "talking_face.generation.evaluate:evaluate",
                     "lip-sync and image metrics on a cached split or a folder of videos"),
}  # fmt: skip


def overview() -> str:
    """What ``talking-face`` and ``talking-face --help`` print: every tool, one line each, by group."""
    lines = ["usage: talking-face TOOL [--help] [flags]", ""]
    for group in dict.fromkeys(tool.group for tool in TOOLS.values()):
        lines.append(f"{group}:")
        lines += [f"  {name:<11} {tool.summary}" for name, tool in TOOLS.items() if tool.group == group]
        lines.append("")
    lines += [
        "Flags take dashes or underscores (--head-motion, --head_motion). Problems with flags or inputs are",
        f"reported in one line; add --debug (or set {DEBUG_VARIABLE}=1) to see the traceback.",
    ]
    return "\n".join(lines)


def cli_main(args: list[str] | None = None, run: bool = True):
    """Build (and with ``run`` execute) the LightningCLI over both stages' modules and the DataModule."""
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    from talking_face.datamodules.datamodule import TalkingFaceDataModule

    return LightningCLI(
        L.LightningModule,
        TalkingFaceDataModule,
        subclass_mode_model=True,
        args=None if args is None else _shipped_configs(args),
        run=run,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "talking-face"},
    )


def _shipped_configs(args: list[str]) -> list[str]:
    """``-c NAME.yaml`` that is no file here means the config of that name shipped with the package."""
    from talking_face.configs import config_path

    resolved = list(args)
    for i, arg in enumerate(args[:-1]):
        if arg in ("-c", "--config"):
            with contextlib.suppress(FileNotFoundError):
                resolved[i + 1] = str(config_path(args[i + 1]))
    return resolved


def _underscored(arg: str) -> str:
    """``--head-motion=1`` -> ``--head_motion=1``: tools take either spelling of a flag."""
    if not arg.startswith("--"):
        return arg
    name, equals, value = arg.partition("=")
    return "--" + name[2:].replace("-", "_") + equals + value


def _usage_message(error: argparse.ArgumentError) -> str:
    """jsonargparse's parse error in one line, naming the flag as the user types it."""
    message = " ".join(str(error).split())
    message = re.sub(r'Parser key "([\w.]+)":', r"--\1:", message)
    message = re.sub(r"<class '(\w+)'>", r"\1", message).replace("Expected a", "expected a")
    choices = r"a typing\.Literal\[([^\]]*)\]"
    message = re.sub(choices, lambda m: "one of " + m.group(1).replace("'", ""), message)
    return re.sub(
        r"the following arguments are required: (.*)",
        lambda m: ", ".join(f"--{name.strip()}" for name in m.group(1).split(",")) + " is required",
        message,
    )


def _run_tool(name: str, args: list[str]) -> None:
    import importlib

    from jsonargparse import auto_cli

    module, function = TOOLS[name].target.split(":")
    tool: Callable = getattr(importlib.import_module(module), function)
    try:
        auto_cli(tool, args=[_underscored(a) for a in args], as_positional=False,
                 prog=f"talking-face {name}", exit_on_error=False)  # fmt: skip
    except argparse.ArgumentError as error:
        raise UsageError("", _usage_message(error)) from error


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it unwinds (and cleans up) like Ctrl-C."""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def _redeliver_swallowed(previous_hook: Callable) -> Callable:
    """An unraisable-exception hook: an interruption raised inside a finaliser (a ``__del__``, logging's fork
    hooks) is dropped by Python, so send the signal again a moment later, from another thread, to land where
    it unwinds the run; anything else goes to ``previous_hook``."""

    def hook(unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            import threading

            signum = signal.SIGTERM if isinstance(unraisable.exc_value, _Terminated) else signal.SIGINT
            threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
            return
        previous_hook(unraisable)

    return hook


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


@contextlib.contextmanager
def _user_facing(prog: str, debug: bool) -> Iterator[None]:
    """Report usage and input errors in one line (exit 2 and 1) and interruptions (130, 143)."""
    previous, previous_hook = signal.signal(signal.SIGTERM, _terminate), sys.unraisablehook
    sys.unraisablehook = _redeliver_swallowed(previous_hook)
    try:
        yield
    except UsageError as error:
        if debug:
            raise
        flag_message = str(error).removeprefix("--: ")
        print(f"{prog}: error: {flag_message}\n(`{prog} --help` lists every flag)", file=sys.stderr)
        sys.exit(2)
    except InputError as error:
        if debug:
            raise
        print(f"{prog}: error: {error}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as interrupt:
        terminated = isinstance(interrupt, _Terminated)
        print(
            f"\n{prog}: {'terminated' if terminated else 'interrupted'}; nothing was written", file=sys.stderr
        )
        sys.exit(128 + (signal.SIGTERM if terminated else signal.SIGINT))
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = previous_hook


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get(DEBUG_VARIABLE, "0") not in ("", "0")
    argv = [arg for arg in argv if arg != "--debug"]
    if not argv or argv[0] in ("-h", "--help"):
        print(overview())
        return
    name, args = argv[0], argv[1:]
    if name not in TOOLS:
        print(f"talking-face: error: unknown tool {name!r}\n\n{overview()}", file=sys.stderr)
        sys.exit(2)
    if TOOLS[name].target == LIGHTNING:
        with _user_facing("talking-face", debug), warnings.catch_warnings():
            # the args passed are this command line itself (shipped configs resolved), not a second one
            warnings.filterwarnings("ignore", "LightningCLI's args parameter is intended")
            cli_main([name, *args])
        return
    with _user_facing(f"talking-face {name}", debug), warnings.catch_warnings():
        if not debug:  # the user's inputs' doubts only, one line each; no library chatter
            warnings.simplefilter("ignore")
            warnings.simplefilter("always", InputWarning)
            warnings.showwarning = _one_line_warning
        _run_tool(name, args)


if __name__ == "__main__":
    main()
