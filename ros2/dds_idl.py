#!/usr/bin/python3
"""Rewrite rosidl_adapter's IDL under the names rmw_cyclonedds registers on DDS.

rosidl_adapter writes `module pkg { module msg { struct Type {...}; }; };`,
the names ROS 2's C/C++ code uses (pkg::msg::Type). On the wire,
rmw_cyclonedds names a message type `pkg::msg::dds_::Type_` (the
namespace of the introspection type support + "::dds_::" + name + "_"),
and a reader only matches a writer of the same type name. So each struct
moves into an inner `module dds_` and gains a trailing underscore, and every
reference to another message follows; nothing else changes (field order,
types and sequences are rosidl's). @verbatim comments and @default values
are dropped: idlc's C generator ignores both, with a warning each (a C
sample starts zeroed; the one non-zero default these messages have,
geometry_msgs/Quaternion's w = 1, ros2/publish.c sets). rosidl's files
have no include guards (its own parser reads each once); idlc's
preprocessor needs them, as a message reaches another by several paths.

usage: dds_idl.py IN_ROOT OUT_ROOT PKG/msg/Type.idl ...
"""
import pathlib
import re
import sys

REF = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)::msg::([A-Za-z_][A-Za-z0-9_]*)\b")


def convert(text, rel):
    guard = re.sub(r"[^A-Za-z0-9]", "_", rel).upper()
    out = ["#ifndef SPLITD_DDS_" + guard, "#define SPLITD_DDS_" + guard]
    lines = text.splitlines()
    skip = False
    msg_open = None
    for line in lines:
        s = line.strip()
        if skip or s.startswith("@verbatim"):
            # a @verbatim annotation runs until its closing parenthesis
            skip = not s.endswith(")")
            continue
        if s.startswith("@default"):
            continue
        if s == "module msg {":
            msg_open = len(out)
            out.append(line + " module dds_ {")
            continue
        m = re.match(r"^(\s*)struct ([A-Za-z_][A-Za-z0-9_]*) \{$", line)
        if m:
            line = "%sstruct %s_ {" % (m.group(1), m.group(2))
        elif not s.startswith("#include"):
            line = REF.sub(lambda r: "%s::msg::dds_::%s_" % (r.group(1), r.group(2)), line)
        out.append(line)
    if msg_open is None:
        raise SystemExit("dds_idl.py: no 'module msg {' in the input")
    # the closing of `module msg` is the last "  };" before the package's "};"
    for i in range(len(out) - 1, msg_open, -1):
        if out[i] == "  };":
            out[i] = "  }; };"
            break
    else:
        raise SystemExit("dds_idl.py: no closing of 'module msg'")
    out.append("#endif")
    return "\n".join(out) + "\n"


def main(argv):
    if len(argv) < 4:
        raise SystemExit(__doc__)
    src, dst = pathlib.Path(argv[1]), pathlib.Path(argv[2])
    for rel in argv[3:]:
        out = dst / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        text = convert((src / rel).read_text(), rel)
        if not out.exists() or out.read_text() != text:
            out.write_text(text)


if __name__ == "__main__":
    main(sys.argv)
