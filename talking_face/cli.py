"""``talking-face``: one command for every stage.

    talking-face synth ...        write the built-in corpus           (talking_face.datamodules.synthetic.corpus)
    talking-face preprocess ...   corpus -> cache                     (talking_face.datamodules.preprocess)
    talking-face inspect ...      print and plot what a cache holds   (talking_face.datamodules.inspect)
    talking-face generate ...     face + speech/text -> mp4           (talking_face.generation)
    talking-face evaluate ...     lip-sync and image metrics, a table (talking_face.generation)
    talking-face finetune ...     personalise Face2Vid to a new face  (talking_face.generation)
    talking-face demo ...         a local Gradio app                  (talking_face.generation)
    talking-face export ...       a run -> a shipped checkpoint + card (talking_face.generation)
    talking-face fit|validate|test|predict -c configs/X.yaml ...     (LightningCLI)

Tools get their flags from their function signatures and docstrings (jsonargparse), so the CLI never
drifts from the Python API. ``cli_main`` is what tests and notebooks call.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from lightning.pytorch.cli import LightningCLI

_TOOLS: dict[str, str] = {
    "synth": "talking_face.datamodules.synthetic.corpus:synthesize_corpus",
    "preprocess": "talking_face.datamodules.preprocess:preprocess_corpus",
    "inspect": "talking_face.datamodules.inspect:inspect_cache",
    "generate": "talking_face.generation.generate:generate",
    "evaluate": "talking_face.generation.evaluate:evaluate",
    "finetune": "talking_face.generation.finetune:finetune",
    "demo": "talking_face.generation.demo:demo",
    "export": "talking_face.generation.export:export",
}
"""Each tool's function (``module:name``), imported only when that tool runs."""
TOOL_NAMES = tuple(_TOOLS)


def _tool(name: str) -> Callable:
    import importlib

    module, function = _TOOLS[name].split(":")
    return getattr(importlib.import_module(module), function)


class TalkingFaceCLI(LightningCLI):
    """LightningCLI that falls back from W&B to a CSV logger when ``WANDB_MODE=disabled``."""

    def before_instantiate_classes(self) -> None:
        if os.environ.get("WANDB_MODE") != "disabled":
            return
        config = self.config[self.subcommand] if self.subcommand else self.config
        loggers = config.trainer.logger
        if loggers is None or isinstance(loggers, bool):
            return
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            if str(logger.get("class_path", "")).endswith("WandbLogger"):
                save_dir = logger.init_args.get("save_dir") or "outputs"
                name = logger.init_args.get("project") or "talking-face"
                logger.class_path = "lightning.pytorch.loggers.CSVLogger"
                logger.init_args = {"save_dir": save_dir, "name": name}


def cli_main(args: list[str] | None = None, run: bool = True) -> LightningCLI:
    """Build (and with ``run`` execute) the LightningCLI over both stages' modules and the DataModule."""
    import lightning as L

    from talking_face.datamodules.datamodule import TalkingFaceDataModule

    return TalkingFaceCLI(
        L.LightningModule,
        TalkingFaceDataModule,
        subclass_mode_model=True,
        args=args,
        run=run,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "talking-face"},
    )


def _underscored(arg: str) -> str:
    """``--head-motion=1`` -> ``--head_motion=1``: tools take either spelling of a flag."""
    if not arg.startswith("--"):
        return arg
    name, equals, value = arg.partition("=")
    return "--" + name[2:].replace("-", "_") + equals + value


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TOOL_NAMES:
        from jsonargparse import auto_cli

        args = [_underscored(arg) for arg in argv[1:]]
        auto_cli(_tool(argv[0]), args=args, as_positional=False)  # each tool prints its own summary
        return
    cli_main(argv)


if __name__ == "__main__":
    main()
