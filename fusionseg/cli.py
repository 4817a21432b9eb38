"""The `fusionseg` command line: a thin dispatcher over the library's modules.

Each command lives next to the code it runs: the module named in `COMMANDS` defines
`configure_parser(parser)` (adds the command's arguments) and `run_command(args) -> int`.
Modules are imported only when their command is used, so `fusionseg --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fusionseg.io import DataError

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "eval": ("fusionseg.evaluate", "score a folder of predicted masks against a benchmark"),
    "data": ("fusionseg.data.verify", "check a local copy of a dataset (`data verify DATASET --root DIR`)"),
    "flow": ("fusionseg.flow", "compute and cache optical flow and flow images for a dataset"),
    "baseline": ("fusionseg.baselines", "run the Flow-Th / Flow-Sal baselines and score them"),
    "train": ("fusionseg.train.command", "train an appearance, motion or fusion model"),
    "segment": ("fusionseg.infer", "segment a video file or frame folder with trained weights"),
    "import-caffe": ("fusionseg.caffe_import", "convert the authors' .caffemodel weights to PyTorch"),
    "synth": ("fusionseg.synth_command", "generate the synthetic world (the default profile's data)"),
    "pseudo-labels": ("fusionseg.pseudo_labels", "bootstrap pseudo-labels from boxed videos (Sec. 3.2)"),
    "book": ("fusionseg.book.build", "execute the book's notebooks and render the HTML book"),
    "reproduce": (
        "fusionseg.reproduce_command",
        "run the paper's chain end to end for a profile (cached, resumable)",
    ),
    "bench": ("fusionseg.bench", "measure speeds on this machine and record them"),
    "agreement": (
        "fusionseg.agreement",
        "run a profile's chain on two paths through the CPU (ISA, threads) and compare every table",
    ),
    "select-recipe": (
        "fusionseg.recipe_search",
        "compare stream recipes on held-out training images (never a test set)",
    ),
}


def _top_level_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<14} {help_}" for name, (_, help_) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="fusionseg",
        description="FusionSeg companion command line.",
        epilog=f"commands:\n{lines}\n\nRun `fusionseg COMMAND --help` for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        _top_level_parser().print_help()
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        _top_level_parser().parse_args([name])  # prints the usage error and exits 2
    module_name, help_ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            print(f"fusionseg {name}: not implemented yet ({module_name} is missing)", file=sys.stderr)
            return 2
        raise
    parser = argparse.ArgumentParser(prog=f"fusionseg {name}", description=help_)
    module.configure_parser(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run_command(args) or 0)
    except DataError as exc:  # bad input: one clear line naming the file, no traceback
        print(f"fusionseg {name}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
