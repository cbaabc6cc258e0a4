#!/usr/bin/env python3
"""Writes the Debian package's machine-readable copyright file (DEP-5) to stdout.

The binary links statically the Swift runtime and Foundation (the toolchain) and every package
in Package.resolved; each gets a paragraph naming its version and licence, with the package's
NOTICE.txt (the third-party code it bundles, e.g. BoringSSL, llhttp, zlib) as the comment.
Usage: deb_copyright.py PACKAGE_RESOLVED CHECKOUTS_DIR [SWIFT_LICENSE]
"""
import json
import os
import shutil
import sys


def field_text(text):
    """Text as a DEP-5 continuation: each line indented by one space, empty lines as ' .'."""
    lines = [line.rstrip() for line in text.strip("\n").splitlines()]
    return "\n".join(" " + line if line.strip() else " ." for line in lines)


def read(path):
    with open(path, encoding="utf-8", errors="replace") as handle:
        return handle.read()


def licence_of(text):
    if "Apache License" in text and "Version 2.0" in text:
        return "Apache-2.0 with Swift Runtime Library Exception" if "Runtime Library Exception" in text else "Apache-2.0"
    sys.exit(f"deb_copyright.py: unrecognised licence text beginning {text[:60]!r}; add it here")


def swift_toolchain_licence():
    if len(sys.argv) > 3:
        return sys.argv[3]
    swift = shutil.which("swift")
    if swift:
        candidate = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(swift))), "share", "swift", "LICENSE.txt")
        if os.path.exists(candidate):
            return candidate
    sys.exit("deb_copyright.py: the Swift toolchain's LICENSE.txt was not found")


resolved = json.load(open(sys.argv[1]))
checkouts = sys.argv[2]
out = ["Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
       "Upstream-Name: cognito-reset",
       "Comment: /usr/bin/cognito-reset is one statically linked program: the paragraphs after",
       " the first name everything linked into it. The program links dynamically only to",
       " Debian's own libraries (libc6, libstdc++6, libgcc-s1, libpq5 and theirs), which carry",
       " their own copyright files.",
       "",
       "Files: *",
       "Copyright: the cognito-reset developers",
       "License: cognito-reset",
       ""]
licences = set()

swift_licence = read(swift_toolchain_licence())
out += ["Files: swift-runtime/*",
        "Copyright: Apple Inc. and the Swift project authors",
        "License: Apache-2.0 with Swift Runtime Library Exception",
        "Comment: the Swift standard library, Concurrency, Dispatch, Foundation",
        " (FoundationEssentials, FoundationInternationalization) and the ICU data of",
        " swift-foundation-icu (Unicode-3.0), from the Swift toolchain, linked statically.",
        ""]
licences.add("Apache-2.0 with Swift Runtime Library Exception")

for pin in sorted(resolved["pins"], key=lambda p: p["identity"]):
    name = os.path.basename(pin["location"]).removesuffix(".git")
    folder = os.path.join(checkouts, name)
    licence_file = next((os.path.join(folder, f) for f in ("LICENSE.txt", "LICENSE", "LICENSE.md") if os.path.exists(os.path.join(folder, f))), None)
    if licence_file is None:
        sys.exit(f"deb_copyright.py: {folder} has no licence file")
    licence = licence_of(read(licence_file))
    licences.add(licence)
    state = pin.get("state", {})
    version = state.get("version") or state.get("revision", "unknown")
    out += [f"Files: swift-packages/{name}/*",
            f"Copyright: the {name} project authors",
            f"License: {licence}",
            f"Comment: {name} {version}, {pin['location']}"]
    notice = os.path.join(folder, "NOTICE.txt")
    if os.path.exists(notice):
        out.append(" .")
        out.append(field_text(read(notice)))
    out.append("")

out += ["License: cognito-reset",
        " No licence has been granted for cognito-reset itself yet: all rights reserved by",
        " its developers.",
        ""]
if "Apache-2.0" in licences:
    out += ["License: Apache-2.0",
            " On Debian systems, the full text of the Apache License, Version 2.0, is in",
            " /usr/share/common-licenses/Apache-2.0.",
            ""]
# The Swift project's licence: Apache-2.0 (in common-licenses) plus its Runtime Library Exception.
exception = swift_licence[swift_licence.find("## Runtime Library Exception"):]
if not exception.startswith("## Runtime Library Exception"):
    sys.exit("deb_copyright.py: the Swift licence has no Runtime Library Exception section")
out += ["License: Apache-2.0 with Swift Runtime Library Exception",
        " The Apache License, Version 2.0 (on Debian systems in",
        " /usr/share/common-licenses/Apache-2.0), with this exception:",
        " .",
        field_text(exception.split("\n", 1)[1].strip("\n")),
        ""]
sys.stdout.write("\n".join(out).rstrip("\n") + "\n")
