#!/usr/bin/env python3
"""Write docs/settings.md from the settings table in python/fulmen/settings.py.

    python tools/gen_settings_doc.py           # rewrite docs/settings.md
    python tools/gen_settings_doc.py --check   # exit 1 if it is out of date

Works from a source checkout without installing fulmen: it imports the
package from python/ (settings.py needs nothing but the standard library).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "settings.md"
sys.path.insert(0, str(ROOT / "python"))  # import fulmen from the checkout, installed or not

from fulmen.settings import ADDRESS_FORMS, CLI, ENV, FILE, SETTINGS, Setting  # noqa: E402

HEADER = (
    "<!-- generated, do not edit: run `python tools/gen_settings_doc.py` after "
    "changing python/fulmen/settings.py -->"
)

INTRO = f"""\
# Settings

Every setting can be given in four ways. From highest precedence to lowest:

1. on the command line: `fulmen --workers 4 app:application`
   (or as a keyword argument of `fulmen.run(app, workers=4)`);
2. in the environment: `FULMEN_WORKERS=4` (`FULMEN_` + the name in upper case);
3. in a config file given with `--config` (or `FULMEN_CONFIG`): a Python file
   whose top-level names are setting names, e.g. `workers = 4`;
4. the default.

Values from the command line and the environment are text and are converted
as the setting's type says; a config file may use Python values or the same
text. Durations are seconds and accept fractions (`2.5`). Booleans accept
`true/false`, `yes/no`, `on/off` and `1/0`; on the command line they are the
flags `--name` and `--no-name`.

`fulmen --print-config [options]` prints the effective settings, each with the
source it came from, in the config file syntax.

A bad value stops fulmen with one line naming its source and exit status 2,
e.g. `fulmen: error: --workers: expected an integer >= 1, got 'x'`.

Bind addresses take the forms {ADDRESS_FORMS}.
"""


def _default(setting: Setting) -> str:
    if setting.default == "" and setting.convert.type_name == "path":
        return "unset"
    return f"`{setting.convert.to_source(setting.default)}`"


def _flags(setting: Setting) -> str:
    if CLI not in setting.sources:
        return ""
    flags = setting.flags
    if setting.is_flag:
        if ENV in setting.sources or FILE in setting.sources:
            flags.append("--no-" + setting.flag[2:])
        return ", ".join(f"`{f}`" for f in flags)
    return ", ".join(f"`{f} {setting.metavar}`" for f in flags)


def render() -> str:
    lines = [HEADER, "", INTRO]

    lines += ["## Summary", "", "| Setting | Command line | Environment | Default |", "|---|---|---|---|"]
    for setting in SETTINGS:
        env = f"`{setting.env}`" if setting.env else ""
        link = f"[`{setting.name}`](#{setting.name})"
        lines.append(f"| {link} | {_flags(setting)} | {env} | {_default(setting)} |")
    lines.append("")

    section = None
    for setting in SETTINGS:
        if setting.section != section:
            section = setting.section
            lines += [f"## {section}", ""]
        lines += [f"### {setting.name}", "", setting.help, ""]
        if setting.details:
            lines += [setting.details, ""]
        lines.append(f"- Type: {setting.convert.type_name}: {setting.convert.expected}")
        lines.append(f"- Default: {_default(setting)}")
        if CLI in setting.sources:
            lines.append(f"- Command line: {_flags(setting)}")
        if setting.env:
            lines.append(f"- Environment: `{setting.env}`")
        if FILE in setting.sources:
            lines.append(f"- Config file: `{setting.name} = ...`")
        else:
            lines.append("- Config file: not allowed")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/settings.md is out of date")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run python tools/gen_settings_doc.py",
                  file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
