"""Pages made from the code at build time, so they cannot drift from it.

``.. keyed-storage-variables::`` is the table of configuration variables, as
``keyed_storage.variables.rst_table()`` makes it (``python -m keyed_storage variables`` prints
the same). ``.. keyed-storage-command::`` is the help of ``manage.py keyed_storage`` and of each
of its subcommands, from the command's own argument parser.
"""

from __future__ import annotations

import argparse
import os

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


class VariablesTable(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        from keyed_storage.variables import rst_table

        container = nodes.container()
        self.state.nested_parse(
            StringList(rst_table().splitlines(), "keyed_storage/variables.py"), 0, container
        )
        return container.children


def command_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """`manage.py keyed_storage` and each subcommand, with its parser, in the command's order."""
    from keyed_storage.management.commands.keyed_storage import Command

    parser = Command().create_parser("manage.py", "keyed_storage")
    found: list[tuple[str, argparse.ArgumentParser]] = [("keyed_storage", parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found += [(f"keyed_storage {name}", sub) for name, sub in action.choices.items()]
    return found


class CommandHelp(SphinxDirective):
    def run(self) -> list[nodes.Node]:
        # argparse wraps help to the terminal's width: a fixed one makes every build the same.
        os.environ["COLUMNS"] = "88"
        found: list[nodes.Node] = []
        for name, parser in command_parsers():
            section = nodes.section(ids=[nodes.make_id(f"command {name}")])
            section += nodes.title(text=f"manage.py {name}")
            section += nodes.literal_block(text=parser.format_help().rstrip())
            found.append(section)
        return found


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("keyed-storage-variables", VariablesTable)
    app.add_directive("keyed-storage-command", CommandHelp)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
