#!/usr/bin/env python3
"""Installs the argument parser's man pages (generate-manual --multi-page) the way Debian names them.

generate-manual names a subcommand's page `cognito-reset.jobs.list.1` and its NAME
`.Nm "cognito-reset jobs list"`, which man-db's whatis index cannot read (a name with spaces that
is not the file's). Pages are installed as `cognito-reset-jobs-list.1.gz` (as git does:
git-commit(1)) with that name in NAME and cross-references, while the SYNOPSIS still shows the
command as typed: `cognito-reset jobs list`. Compressed with gzip -9 and no timestamp, so the
package builds the same bytes each time.
Usage: deb_manpages.py GENERATED_DIR MAN1_DIR
"""
import gzip
import os
import re
import sys

source, target = sys.argv[1], sys.argv[2]
pages = sorted(f for f in os.listdir(source) if f.endswith(".1"))
if "cognito-reset.1" not in pages:
    sys.exit(f"deb_manpages.py: no cognito-reset.1 in {source}")
for page in pages:
    stem = page[:-2]                      # cognito-reset.jobs.list
    words = stem.split(".")               # [cognito-reset, jobs, list]
    name = "-".join(words)                # cognito-reset-jobs-list
    typed = " ".join(words)               # cognito-reset jobs list
    text = open(os.path.join(source, page), encoding="utf-8").read()
    text = re.sub(r"^\.Dt \S+ 1$", f".Dt {name.upper()} 1", text, count=1, flags=re.M)
    text = re.sub(r"^\.Xr (cognito-reset(?:\.[a-z-]+)+) 1", lambda m: f".Xr {m.group(1).replace('.', '-')} 1", text, flags=re.M)
    if len(words) > 1:
        # NAME: the page's own name; every later bare .Nm (SYNOPSIS, AUTHORS): the typed command.
        before, sep, after = text.partition(f'.Nm "{typed}"\n')
        if not sep:
            sys.exit(f"deb_manpages.py: {page} has no NAME line for {typed!r}")
        after = re.sub(r"^\.Nm$", f'.Nm "{typed}"', after, flags=re.M)
        text = before + f".Nm {name}\n" + after
    with open(os.path.join(target, name + ".1.gz"), "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as out:
            out.write(text.encode("utf-8"))
