"""The plugin's settings as a markdown table, made from their one declaration
(`datalake_core.settings.SETTINGS`) so that the README cannot fall behind the code.

    python -m snakemake_storage_plugin_datalake.settings_table             # print the table
    python -m snakemake_storage_plugin_datalake.settings_table README.md   # replace it there
"""

from __future__ import annotations

import sys
from pathlib import Path

from datalake_core.settings import SETTINGS, Setting

START = "<!-- settings-table:start -->"
END = "<!-- settings-table:end -->"
HEADER = ("| Setting | Type | Default | Environment variable | Required | Description |\n"
          "|---|---|---|---|---|---|\n")


def markdown() -> str:
    """The table, one row per setting in declaration order."""
    return HEADER + "".join(_row(s) for s in SETTINGS)


def _row(setting: Setting) -> str:
    cells = (f"`{setting.option}`", _type(setting), _default(setting), _env(setting),
             "yes" if setting.required else "no", setting.help)
    return "| " + " | ".join(_escape(c) for c in cells) + " |\n"


def _escape(cell: str) -> str:
    # `<dir>` and the like in help texts must show, not be taken for HTML.
    return cell.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _type(setting: Setting) -> str:
    if setting.choices:
        return "one of " + ", ".join(f"`{c}`" for c in setting.choices)
    return {bool: "flag", int: "integer", Path: "path"}.get(setting.value_type, "text")


def _default(setting: Setting) -> str:
    if setting.default is None:
        return ""
    if isinstance(setting.default, bool):
        return "on" if setting.default else "off"
    return f"`{setting.default}`"


def _env(setting: Setting) -> str:
    if setting.env_name is None:
        return ""
    return f"`{setting.env_name}`" + (" (secret: only from here)" if setting.secret else "")


def replace_table(text: str) -> str:
    """`text` with the part between the markers replaced by the current table."""
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"no {START} ... {END} in the text")
    return f"{head}{START}\n{markdown()}{END}{tail}"


def main(argv: list[str]) -> int:
    if not argv:
        sys.stdout.write(markdown())
        return 0
    readme = Path(argv[0])
    readme.write_text(replace_table(readme.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
